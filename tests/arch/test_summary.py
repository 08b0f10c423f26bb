"""`googlenet summary` as a library call: Table 1 beside the paper's printed figures."""

import json

from googlenet.arch.costs import network_cost
from googlenet.arch.summary import differs, parse_printed, render_summary, summary_record
from googlenet.arch.table import VARIANTS


def test_parse_printed_figures():
    assert parse_printed("2.7K") == 2_700
    assert parse_printed("1072K") == 1_072_000
    assert parse_printed("34M") == 34_000_000
    assert parse_printed(None) is None


def test_rows_that_differ_beyond_rounding_are_marked():
    record = summary_record(network_cost(VARIANTS["paper"]))
    flagged = {(r["name"], key) for r in record["rows"]
               for key in ("params_differ", "ops_differ") if r[key]}
    # conv1 prints 2.7K / 34M for 9,472 / 118M; 4c prints 463K for 510,104; 5a 54M for 51.1M.
    assert flagged == {("convolution", "params_differ"), ("convolution", "ops_differ"),
                       ("inception (4c)", "params_differ"), ("inception (5a)", "ops_differ")}
    row_4c = next(r for r in record["rows"] if r["name"] == "inception (4c)")
    assert (row_4c["params"], row_4c["paper_params"]) == (510_104, 463_000)


def test_differs_uses_a_relative_tolerance():
    assert differs(163_696, 159_000) is False
    assert differs(510_104, 463_000) is True
    assert differs(5, None) is None


def test_json_has_the_documented_fields():
    record = json.loads(render_summary(network_cost(VARIANTS["paper"]), "json"))
    assert set(record) >= {"variant", "input_size", "rows", "total", "aux"}
    row_3a = record["rows"][4]
    assert row_3a["name"] == "inception (3a)" and row_3a["output_size"] == [28, 28, 256]
    assert isinstance(row_3a["params"], int) and row_3a["paper_params"] == 159_000
    assert record["total"] == {"params": 6_998_552, "ops": 1_582_671_872}
    assert record["aux"]["params"] == 6_379_728


def test_text_and_markdown_show_every_row_and_the_totals():
    network = network_cost(VARIANTS["bn"])
    text = render_summary(network, "text")
    assert "6,624,904" in text and "2x2/2" in text and "dropout (20%)" in text
    markdown = render_summary(network, "markdown").splitlines()
    table = [line for line in markdown if line.startswith("|")]
    assert len(table) == 2 + len(network.rows) + 2  # header, rule, rows, total, aux


def test_other_input_sizes_are_not_compared_with_the_paper():
    record = summary_record(network_cost(VARIANTS["paper"], 32, 10))
    assert all(r["params_differ"] is None for r in record["rows"])
    assert record["rows"][-2]["output_size"] == [1, 1, 10]
