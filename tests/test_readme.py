"""The README's and the docs pages' code and links hold as written.

On every page (README.md and docs/*.md; docs/tour.md is run as a notebook by test_tour.py):

- every `googlenet ...` command of a ```bash block (torchrun's included) parses: its
  subcommand and flags exist; `summary` and `cost` commands are run;
- every benchmark script, test file or tool it names (`benchmarks/...`, `tests/...`,
  `tools/...`, in a command or a code span) exists;
- every output shown under `<!-- output of: COMMAND -->` is what COMMAND prints;
- every link resolves: `#anchor` to a heading of the page (GitHub's anchors), a relative path
  to a file of the repository, and its `#anchor` to a heading of that page; http(s) links are
  left alone.

The README's ```python blocks run in order in one namespace (later blocks use what earlier ones
made), in a fresh working directory, and so do each docs page's. The README's first screen
holds `make demo` and `make test`, and a Quick start follows it; it links every docs page.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from pathlib import Path
from urllib.parse import unquote

import pytest

from googlenet.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md"] + sorted(f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")
                               if page.name != "tour.md")
README = (ROOT / "README.md").read_text()


def text(page: str) -> str:
    return (ROOT / page).read_text()


def blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.S | re.M)


def prose(markdown: str) -> str:
    """The page without its fenced blocks (a `# comment` in a bash block is not a heading)."""
    return re.sub(r"^```.*?^```[^\n]*$", "", markdown, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """The block's command lines: continuations joined, comments and redirections dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [line.split(" #")[0].split(" > ")[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def googlenet_commands(markdown: str) -> list[list[str]]:
    found = []
    for block in blocks(markdown, "bash"):
        for line in commands(block):
            words = shlex.split(line)
            if words[:1] == ["googlenet"]:
                found.append(words[1:])
            elif "googlenet" in words and words[words.index("googlenet") - 1] == "-m":
                found.append(words[words.index("googlenet") + 1:])  # torchrun ... -m googlenet
    return found


def page_commands() -> list:
    return [pytest.param(argv, id=f"{page}: {' '.join(argv)}")
            for page in PAGES for argv in googlenet_commands(text(page))]


def shown_outputs(markdown: str) -> list[tuple[str, str]]:
    return re.findall(r"<!-- output of: (.*?) -->\n```text\n(.*?)```", markdown, flags=re.S)


def expand_braces(word: str) -> list[str]:
    """`results/x.{md,json}` -> results/x.md, results/x.json (as the shell would)."""
    match = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not match:
        return [word]
    return [expanded for choice in match.group(1).split(",")
            for expanded in expand_braces(word[:match.start()] + choice + word[match.end():])]


def files_named(markdown: str) -> set[str]:
    """Repository files a page names: in its bash commands, and in its code spans."""
    words = [word for block in blocks(markdown, "bash") for line in commands(block)
             for word in shlex.split(line)]
    words += [word for span in re.findall(r"`([^`\n]+)`", prose(markdown)) for word in span.split()]
    return {path for word in words if re.match(r"(benchmarks|tests|tools)/\w", word)
            for path in expand_braces(word.rstrip(".,;:)"))}


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor; a repeated heading's gets -1, -2, ... as on GitHub."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", prose(markdown), flags=re.M):
        base = anchor(heading)
        name = next(name for name in itertools.chain([base], (f"{base}-{n}" for n in itertools.count(1)))
                    if name not in found)
        found.add(name)
    return found


def links(markdown: str) -> list[str]:
    """Every link and image target outside code: inline, reference-style and HTML."""
    outside_code = re.sub(r"`[^`\n]*`", "", prose(markdown))
    return (re.findall(r"\]\(\s*<?([^)\s>]+)", outside_code)
            + re.findall(r"^\s*\[[^\]]+\]:\s*<?([^\s>]+)", outside_code, flags=re.M)
            + re.findall(r"\b(?:href|src)=\"([^\"]+)\"", outside_code))


def broken(page: str, target: str) -> str | None:
    """Why a link of `page` leads nowhere, or None when it resolves (or leaves the repository
    for the web, which this test leaves alone)."""
    if re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, https:, mailto:
        return None
    path, _, fragment = target.partition("#")
    file = Path(os.path.normpath((ROOT / page).parent / unquote(path))) if path else ROOT / page
    if file != ROOT and ROOT not in file.parents:
        return "outside the repository"
    if not file.exists():
        return "no such file"
    if fragment:
        if file.suffix != ".md":
            return "an anchor into a file that is not Markdown"
        if unquote(fragment) not in anchors(file.read_text()):
            return f"no heading of {file.relative_to(ROOT)} has this anchor"
    return None


def run_python_blocks(page: str, markdown: str) -> None:
    namespace: dict = {}
    for number, block in enumerate(blocks(markdown, "python"), start=1):
        try:
            exec(compile(block, f"{page} python block {number}", "exec"), namespace)
        except Exception as error:
            pytest.fail(f"{page} python block {number} failed: {type(error).__name__}: {error}")


def test_the_readme_has_examples_of_every_kind():
    assert len(blocks(README, "python")) >= 3 and len(googlenet_commands(README)) >= 30
    assert shown_outputs(README) and files_named(README)


def test_the_readme_opens_with_the_demo_then_a_quick_start():
    lines = README.splitlines()
    first_screen = "\n".join(lines[:30])
    assert "make demo" in first_screen and "make test" in first_screen
    assert any(re.fullmatch(r"#{2,3} Quick start", line) for line in lines[:60])


def test_the_readme_links_every_docs_page():
    linked = {Path(os.path.normpath(target.partition("#")[0])) for target in links(README)}
    assert [page for page in PAGES[1:] if Path(page) not in linked] == []


def test_every_python_block_of_the_readme_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_python_blocks("README.md", README)
    assert "top-1" in capsys.readouterr().out


@pytest.mark.parametrize("page", PAGES[1:])
def test_every_python_block_of_a_docs_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_python_blocks(page, text(page))


@pytest.mark.parametrize("argv", page_commands())
def test_every_googlenet_command_parses(argv, capsys):
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`googlenet {' '.join(argv)}` does not parse: {capsys.readouterr().err}")


@pytest.mark.parametrize("argv", [p for p in page_commands() if p.values[0][0] in ("summary", "cost")])
def test_the_table_commands_run(argv, capsys):
    assert main(argv) == 0 and capsys.readouterr().out


@pytest.mark.parametrize("page", PAGES)
def test_every_file_named_exists(page):
    named = files_named(text(page)) | set(re.findall(r"python (benchmarks/\S+\.py)", text(page)))
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


@pytest.mark.parametrize("command, shown", [
    pytest.param(command, shown, id=f"{page}: {command}")
    for page in PAGES for command, shown in shown_outputs(text(page))])
def test_shown_output_is_the_real_output(command, shown, capsys):
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out == shown, command


@pytest.mark.parametrize("page", PAGES)
def test_every_link_resolves(page):
    targets = links(text(page))
    assert targets
    assert {target: why for target in targets if (why := broken(page, target))} == {}


def test_the_link_checks_catch_what_they_should():
    assert anchor("### `googlenet export`, `googlenet quantize`, ONNX Runtime and OpenVINO"
                  .lstrip("# ")) == "googlenet-export-googlenet-quantize-onnx-runtime-and-openvino"
    assert anchors("# A\n```bash\n# not a heading\n```\n## A\n") == {"a", "a-1"}
    assert links("[a](#x) `[b](#y)` ![c](d.png)\n```\n[e](#z)\n```\n") == ["#x", "d.png"]
    assert broken("README.md", "https://example.com/nowhere") is None
    assert broken("README.md", "#install") is None and broken("README.md", "#nowhere")
    assert broken("README.md", "docs/nowhere.md") == "no such file"
    assert broken("README.md", "../outside.md") == "outside the repository"
    assert expand_braces("r/x.{md,png}") == ["r/x.md", "r/x.png"]
