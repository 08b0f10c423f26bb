"""`googlenet diagram`: the pictures are drawn from the table, so the table's every row, filter
count, output size and cost must be in them (read back from the SVG's text)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from googlenet.arch.costs import module_comparison, network_cost
from googlenet.arch.table import TABLE_1, InceptionRow, get_variant
from googlenet.cli.main import main
from googlenet.visual.diagram import module_figure, network_figure, short
from googlenet.visual.pictures import save_figure


def svg_text(path: Path) -> str:
    """Every text of an SVG written by save_figure (its text kept as text), one per line."""
    return "\n".join(" ".join(element.itertext()) for element in ET.parse(path).getroot().iter()
                     if element.tag.endswith("}text"))


@pytest.mark.parametrize("variant", ["paper", "bn"])
def test_every_row_of_the_table_is_drawn_with_its_size_and_cost(variant, tmp_path):
    path = save_figure(network_figure(get_variant(variant)), tmp_path / "net.svg")
    text = svg_text(path)
    network = network_cost(get_variant(variant))
    for row, row_cost in zip(TABLE_1, network.rows):
        name = row.name if "dropout" not in row.name else f"dropout ({get_variant(variant).dropout:.0%})"
        assert name in text, name
        assert "x".join(map(str, row_cost.output_size)) in text, row.name
        if row_cost.cost.params:
            assert f"{short(row_cost.cost.params)} params" in text, row.name
        if isinstance(row, InceptionRow):
            for count in (row.c1x1, row.c3x3_reduce, row.c3x3, row.c5x5_reduce, row.c5x5, row.pool_proj):
                assert str(count) in text
    assert "aux head 1, on inception (4a)" in text and "aux head 2, on inception (4d)" in text
    assert ("local response norm" in text) == (variant == "paper")  # Figure 3's LRN, paper only
    assert ("5x5" in text) == (variant == "paper")  # bn's "5x5" branch is 3x3 (torchvision)


def test_the_network_fits_an_a4_page():
    figure = network_figure(get_variant("paper"))
    assert tuple(round(v, 2) for v in figure.get_size_inches()) == (8.27, 11.69)


def test_a_module_and_its_naive_version_carry_the_cost_comparison(tmp_path):
    path = save_figure(module_figure("4a", get_variant("paper"), naive=True), tmp_path / "4a.svg")
    text = svg_text(path)
    comparison = module_comparison("4a", get_variant("paper"))
    assert "(a) inception (4a), naive version" in text and "(b) inception (4a) with dimension" in text
    assert f"14x14x{comparison.naive_channels}" in text and "14x14x512" in text  # both concatenations
    assert f"{comparison.naive_ops / 1e6:.1f}M" in text and f"{comparison.reduced_ops / 1e6:.1f}M" in text
    assert "1x1 reduce, 96" in text and "1x1 projection, 64" in text and "14x14x480" in text


def test_the_command_writes_png_refuses_to_overwrite_and_names_bad_input(tmp_path, capsys):
    output = tmp_path / "net.png"
    assert main(["diagram", "--variant", "bn", "--output", str(output)]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out == f"wrote {output}\n"
    assert main(["diagram", "--output", str(output)]) == 2
    assert "exists; replace it with --force" in capsys.readouterr().err
    assert main(["diagram", "--output", str(tmp_path / "net.pdf")]) == 2
    assert "net.pdf: a picture must end in .png or .svg" in capsys.readouterr().err
    assert main(["diagram", "--layer", "6a", "--output", str(tmp_path / "m.png")]) == 2
    assert "no Inception module '6a'; choose one of 3a" in capsys.readouterr().err
    assert main(["diagram", "--naive", "--output", str(tmp_path / "n.png")]) == 2
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


def test_without_output_the_picture_goes_under_outputs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", "--layer", "4a", "--naive"]) == 0
    assert capsys.readouterr().out == "wrote outputs/inception-4a-naive.png\n"
    assert (tmp_path / "outputs" / "inception-4a-naive.png").is_file()


def test_the_command_imports_no_torch(tmp_path):
    """`python -X importtime` lists every module imported: the diagram needs the table only."""
    argv = ["diagram", "--layer", "3a", "--output", str(tmp_path / "3a.svg")]
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "googlenet", *argv],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "googlenet.visual.diagram" in modules and "matplotlib" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "torchvision")}
