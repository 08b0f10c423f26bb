"""Every `googlenet` command runs; JSON output parses; user errors exit non-zero without a traceback."""

import json
import subprocess
import sys

import pytest

from googlenet.cli.main import main


def run_json(capsys, *argv):
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("variant", ["paper", "bn"])
def test_summary_json(capsys, variant):
    record = run_json(capsys, "summary", "--variant", variant)
    assert record["variant"] == variant and len(record["rows"]) == 19


def test_summary_at_a_small_input_size(capsys):
    record = run_json(capsys, "summary", "--input-size", "32", "--num-classes", "10")
    assert record["input_size"] == 32 and record["rows"][0]["output_size"] == [16, 16, 64]


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_summary_text_formats(capsys, fmt):
    assert main(["summary", "--format", fmt]) == 0
    assert "inception (5b)" in capsys.readouterr().out


def test_cost_default_is_the_papers_example(capsys):
    record = run_json(capsys, "cost")
    assert record["naive_ops"] == 173_408_256
    assert record["reduce_ops"] + record["conv_ops"] == record["reduced_ops"] == 101_154_816
    assert main(["cost"]) == 0
    text = capsys.readouterr().out
    assert "173.4M" in text and "14.5M" in text and "86.7M" in text and "101.2M" in text
    assert "42%" in text


def test_cost_of_a_custom_convolution(capsys):
    record = run_json(capsys, "cost", "--input", "14x14x480", "--kernel", "5", "--outputs", "48",
                      "--reduce", "16")
    assert record["naive_ops"] == 14 * 14 * 25 * 480 * 48


def test_cost_module(capsys):
    record = run_json(capsys, "cost", "--layer", "3a")
    assert record["naive_channels"] == 416 and record["reduced_channels"] == 256
    assert main(["cost", "--layer", "4c"]) == 0
    assert "naive" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["cost", "--layer", "9z"], "no Inception module '9z'"),
    (["summary", "--input-size", "20"], "below the minimum 31"),
])
def test_user_errors_exit_2_with_a_message(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["summary", "--variant", "vgg"], ["cost", "--input", "28x28"]])
def test_bad_flags_are_rejected_by_argparse(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "googlenet", "summary", "--format", "json"],
                            capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["total"]["params"] == 6_998_552


@pytest.mark.parametrize("argv", [["--help"], ["summary"], ["cost"], ["train", "--help"]])
def test_commands_that_need_only_the_table_start_without_torch(argv):
    """`python -X importtime` lists every module imported; none may be torch's."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "googlenet", *argv],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "googlenet.cli.main" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "torchvision", "numpy")}


def test_every_train_flag_has_help_text(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--data PATH" in out and "--augment POLICY" in out and "--bias-lr-scale" in out
    flags = [line.split()[0] for line in out.splitlines() if line.strip().startswith("--")]
    lines = out.splitlines()
    for flag in flags:  # every flag's line, or the next, carries help text (with its default)
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(flag))
        assert len((lines[index] + lines[index + 1]).split()) > 2, flag


def test_the_model_argument_is_spelled_the_same_everywhere(capsys):
    for command in ("evaluate", "predict", "features", "export", "quantize", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "-m MODEL, --model MODEL" in capsys.readouterr().out.replace(" [MODEL ...]", ""), command


# (command line with the old spelling, the old and the new flag, its parsed field, the value)
RENAMED = [
    (["cost", "--module", "3a"], "--module", "--layer", "layer", "3a"),
    (["diagram", "--module", "4a"], "--module", "--layer", "layer", "4a"),
    (["visualize", "features", "x.png", "-m", "imagenet", "--module", "4c"], "--module", "--layer",
     "layer", "4c"),
    (["explain", "x.png", "-m", "imagenet", "--output", "maps"], "--output", "--output-dir",
     "output_dir", "maps"),
    (["quantize", "-m", "imagenet", "--calibration", "digits", "--output", "q.onnx",
      "--eval-images", "20"], "--eval-images", "--limit", "limit", 20),
    (["train", "--weights", "imagenet"], "--weights", "--model", "weights", "imagenet"),
    (["train", "--output", "runs/x"], "--output", "--output-dir", "output", "runs/x"),
    (["detect", "train", "--output", "runs/d"], "--output", "--output-dir", "output_dir", "runs/d"),
]


@pytest.mark.parametrize(("argv", "old", "new", "field", "value"), RENAMED, ids=lambda a: str(a))
def test_old_spellings_work_for_one_release_with_a_note(argv, old, new, field, value, capsys):
    from googlenet.cli.main import build_parser

    args = build_parser().parse_args(argv)
    assert getattr(args, field) == value
    assert f"note: {old} is now {new}" in capsys.readouterr().err
    command = argv[:2] if argv[0] in ("visualize", "detect") else argv[:1]
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    help_text = capsys.readouterr().out
    assert new in help_text and f"{old} " not in help_text.replace(new, "")  # hidden from --help


def test_a_run_directory_is_output_dir_as_every_folder(capsys):
    """--output names a file, --output-dir a folder: train's and detect train's run directory."""
    from googlenet.cli.main import build_parser

    assert build_parser().parse_args(["train", "--output-dir", "runs/x"]).output == "runs/x"
    assert build_parser().parse_args(["detect", "train", "--output-dir", "runs/d"]).output_dir == "runs/d"
    assert "note:" not in capsys.readouterr().err


def test_no_cuda_warning_that_a_cpu_user_cannot_act_on(tmp_path):
    """cpp_extension warns at import when CUDA_HOME exists but no GPU does (NNCF imports it)."""
    code = "import googlenet.cli.main, torch.utils.cpp_extension"
    env = {**__import__("os").environ, "CUDA_HOME": str(tmp_path)}
    bare = subprocess.run([sys.executable, "-c", "import torch.utils.cpp_extension"], env=env,
                          capture_output=True, text=True, timeout=120)
    ours = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    if "No CUDA runtime is found" not in bare.stderr:
        pytest.skip("torch gives no such warning here (a GPU is present)")
    assert ours.returncode == 0 and "No CUDA runtime" not in ours.stderr
