"""What the benchmark scripts share: writing their result as a markdown file and printing it."""

from __future__ import annotations

from pathlib import Path


def write_report(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
