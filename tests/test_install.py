"""tools/install.py, which `make` uses to fill .venv: pip's settings reach uv as flags, and pip
installs where uv fails."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "install", Path(__file__).parents[1] / "tools" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)

LISTED = """\
:env:.find-links='/opt/wheels'
:env:.default-timeout='180'
global.find-links='/elsewhere'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
install.index-url='https://mirror.example/simple'
global.index-url='https://ignored.example/simple'
"""


def fake_run(listed: str, fail_uv: bool = False):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        if argv[-2:] == ["config", "list"]:
            return subprocess.CompletedProcess(argv, 0, stdout=listed)
        if fail_uv and "uv" in argv[:4]:
            raise subprocess.CalledProcessError(2, argv)
        return subprocess.CompletedProcess(argv, 0)
    return run, calls


def test_pips_settings_become_uvs_flags_with_pips_precedence(monkeypatch):
    run, _ = fake_run(LISTED)
    monkeypatch.setattr(install.subprocess, "run", run)
    settings = install.pip_settings()
    assert settings == {"find-links": ["/opt/wheels"],  # PIP_FIND_LINKS over pip.conf
                        "constraint": ["/etc/xdg/pip/constraints.txt"],
                        "extra-index-url": ["file:///opt/pypi/simple", "file:///opt/pypi-more/simple"],
                        "index-url": ["https://mirror.example/simple"]}  # [install] over [global]
    flags = install.uv_flags(settings)
    assert flags[:2] == ["--index-strategy", "unsafe-best-match"]
    pairs = list(zip(flags[2::2], flags[3::2]))
    assert ("--find-links", "/opt/wheels") in pairs
    assert ("--index-url", "https://mirror.example/simple") in pairs
    assert [v for k, v in pairs if k == "--extra-index-url"] == ["file:///opt/pypi/simple",
                                                                 "file:///opt/pypi-more/simple"]
    assert install.uv_flags({}) == flags[:2]  # no settings: uv's defaults (PyPI)


def test_uv_installs_and_pip_does_where_uv_fails(monkeypatch, capsys):
    run, calls = fake_run(LISTED)
    monkeypatch.setattr(install.subprocess, "run", run)
    assert install.main(["-e", ".[test]"]) == 0
    assert calls[-1][1:4] == ["-m", "uv", "pip"] and calls[-1][-2:] == ["-e", ".[test]"]
    run, calls = fake_run(LISTED, fail_uv=True)
    monkeypatch.setattr(install.subprocess, "run", run)
    assert install.main(["-e", ".[test]"]) == 0
    assert "installing with pip" in capsys.readouterr().err
    assert calls[-1][1:4] == ["-m", "pip", "install"] and calls[-1][-2:] == ["-e", ".[test]"]
