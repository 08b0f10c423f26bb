"""Installs packages into this interpreter's environment with uv, under pip's own settings.

`make` runs it to fill .venv: the test extra is 6 GB (torch with its CUDA libraries), which pip
unpacks one file at a time (2 min 26 s on 2 cores) and uv in parallel (17 s, same packages).
uv does not read pip's configuration (pip.conf, PIP_* variables): the index, extra indexes,
find-links and constraints a machine sets for pip are handed to uv as flags, with pip's rule of
taking the best version from any index. Where uv cannot be installed or fails, pip does the work.

    python tools/install.py -e '.[test]'
"""

from __future__ import annotations

import re
import subprocess
import sys

PIP = [sys.executable, "-m", "pip"]
QUIET = ["--quiet", "--disable-pip-version-check"]
# pip's settings that choose packages, as uv's flags; lists are whitespace-separated in pip
SETTINGS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
            "find-links": "--find-links", "constraint": "--constraint"}
# `pip config list` names each setting's section: PIP_* variables win over the files' [install]
# section, which wins over [global] (pip merges its site, user and global files before that)
SCOPES = (":env:", "install", "global")
LINE = re.compile(r"^(?P<scope>[^.]*)\.(?P<key>[\w-]+)='(?P<value>.*)'$")


def pip_settings() -> dict[str, list[str]]:
    listed = subprocess.run([*PIP, "config", "list"], capture_output=True, text=True).stdout
    found: dict[str, dict[str, str]] = {}
    for line in listed.splitlines():
        if (match := LINE.match(line.strip())) and match["key"] in SETTINGS:
            found.setdefault(match["key"], {})[match["scope"]] = match["value"]
    return {key: next(scopes[s] for s in SCOPES if s in scopes).split()
            for key, scopes in found.items() if any(s in scopes for s in SCOPES)}


def uv_flags(settings: dict[str, list[str]]) -> list[str]:
    flags = ["--index-strategy", "unsafe-best-match"]  # pip's rule: the best version anywhere
    for key, values in settings.items():
        for value in values:
            flags += [SETTINGS[key], value]
    return flags


def main(packages: list[str]) -> int:
    try:
        subprocess.run([*PIP, "install", *QUIET, "uv"], check=True)
        subprocess.run([sys.executable, "-m", "uv", "pip", "install", "--quiet", "--no-cache",
                        "--python", sys.executable, *uv_flags(pip_settings()), *packages],
                       check=True)
        return 0
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"uv could not install ({error}): installing with pip", file=sys.stderr)
    # --no-compile: modules compile when first imported; most of torch's never are
    return subprocess.run([*PIP, "install", *QUIET, "--no-compile", *packages]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
