"""Output formatting shared by every report the CLI prints: the output formats, plain-text and
markdown tables, and number formats.

Top-level and layer-free, like errors.py: the lowest layer (arch: Table 1's summary and Sec. 4's
cost report) renders tables too, so this imports nothing from googlenet, and no torch or numpy
(the forbidden contract in pyproject.toml lists it)."""

from __future__ import annotations

from collections.abc import Sequence

FORMATS = ("text", "markdown", "json")


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], fmt: str = "text") -> str:
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def thousands(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def millions(value: int) -> str:
    return f"{value / 1e6:.1f}M"
