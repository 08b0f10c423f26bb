"""The README's code runs as written.

- every ```python block, in order, in one namespace (later blocks use what earlier ones
  made), in a fresh working directory;
- every `googlenet ...` command of a ```bash block (torchrun's included) parses: its
  subcommand and flags exist; `summary` and `cost` commands are run;
- every `python benchmarks/...` command names a script that exists;
- every output shown under `<!-- output of: COMMAND -->` is what COMMAND prints.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from googlenet.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands(block: str) -> list[str]:
    """The block's command lines: continuations joined, comments and redirections dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [line.split(" #")[0].split(" > ")[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def googlenet_commands() -> list[list[str]]:
    found = []
    for block in blocks("bash"):
        for line in commands(block):
            words = shlex.split(line)
            if words[:1] == ["googlenet"]:
                found.append(words[1:])
            elif "googlenet" in words and words[words.index("googlenet") - 1] == "-m":
                found.append(words[words.index("googlenet") + 1:])  # torchrun ... -m googlenet
    return found


def test_the_readme_has_examples_of_every_kind():
    assert len(blocks("python")) >= 3 and len(googlenet_commands()) >= 30


def test_every_python_block_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks("python"), start=1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as error:
            pytest.fail(f"README python block {number} failed: {type(error).__name__}: {error}")
    assert "top-1" in capsys.readouterr().out


@pytest.mark.parametrize("argv", googlenet_commands(), ids=" ".join)
def test_every_googlenet_command_parses(argv, capsys):
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`googlenet {' '.join(argv)}` does not parse: {capsys.readouterr().err}")


@pytest.mark.parametrize("argv", [a for a in googlenet_commands() if a[0] in ("summary", "cost")],
                         ids=" ".join)
def test_the_table_commands_run(argv, capsys):
    assert main(argv) == 0 and capsys.readouterr().out


def test_every_benchmark_named_exists():
    scripts = {word for block in blocks("bash") for line in commands(block)
               for word in shlex.split(line) if word.startswith("benchmarks/")}
    scripts |= set(re.findall(r"python (benchmarks/\S+\.py)", README))
    assert scripts and all((ROOT / script).is_file() for script in scripts), scripts


def test_shown_output_is_the_real_output(capsys):
    shown = re.findall(r"<!-- output of: (.*?) -->\n```text\n(.*?)```", README, flags=re.S)
    assert shown
    for command, text in shown:
        assert main(shlex.split(command)[1:]) == 0
        assert capsys.readouterr().out == text, command


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_within_the_readme_names_a_heading():
    headings = {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", README, flags=re.M)}
    targets = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert targets and sorted(targets - headings) == []
