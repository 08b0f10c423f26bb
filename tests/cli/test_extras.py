"""A command whose optional extra is missing says which `pip install` to run, before any work:
each extra is tested by hiding one of its modules (sys.modules[name] = None makes it unimportable)."""

import sys

import pytest

from googlenet.cli.main import main
from googlenet.errors import GoogLeNetError, MissingExtra
from googlenet.extras import EXTRAS, import_extra, require_extra

# (command line, the module hidden, the extra that provides it)
CASES = [
    (["serve", "-m", "imagenet"], "fastapi", "serve"),
    (["serve", "-m", "imagenet"], "multipart", "serve"),
    (["explain", "x.png", "-m", "imagenet"], "captum", "explain"),
    (["detect", "evaluate", "-m", "runs/x"], "pycocotools", "detect"),
    (["detect", "predict", "x.png", "-m", "runs/x"], "cv2", "detect"),
    (["predict", "x.png", "-m", "model.xml", "--backend", "openvino"], "openvino", "openvino"),
    (["quantize", "-m", "imagenet", "--calibration", "digits", "--output", "q.xml",
      "--engine", "openvino"], "nncf", "openvino"),
    (["export", "-m", "imagenet", "--output", "m.xml"], "openvino", "openvino"),
    (["features", "x.png", "-m", "imagenet", "--output", "f.parquet"], "pyarrow", "parquet"),
    (["batch", "predict", "x.png", "-m", "imagenet", "--output", "out/"], "ray", "ray"),
]


@pytest.mark.parametrize(("argv", "hidden", "extra"), CASES, ids=lambda a: str(a))
def test_a_missing_extra_is_one_line_naming_its_install(argv, hidden, extra, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, hidden, None)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"needs {hidden}: pip install 'googlenet[{extra}]'" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_library_raises_a_typed_error_naming_the_extra(monkeypatch):
    for extra, modules in EXTRAS.items():
        require_extra(extra, "this test")  # the test extra installs every one
        monkeypatch.setitem(sys.modules, modules[-1], None)
        message = rf"this test needs {modules[-1]}: pip install 'googlenet\[{extra}\]'"
        with pytest.raises(MissingExtra, match=message):
            require_extra(extra, "this test")
    with pytest.raises(MissingExtra) as caught:
        import_extra("pycocotools.coco", "detect", "mAP")
    assert isinstance(caught.value, (GoogLeNetError, ImportError))  # either except clause catches it
