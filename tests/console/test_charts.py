"""The console's server-drawn SVG charts, parsed as XML: bar heights and point positions proportional to the data
on an axis whose ticks say its scale, values as text, accessible titles, escaped labels. Pure functions: no
service is involved."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from mspclaw.console import charts

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def rects(root: ET.Element, series: str | None = None) -> list[ET.Element]:
    found = root.findall(".//s:g[@class='bar-group']/s:rect", NS)
    return [r for r in found if series is None or r.get("data-series") == series]


def ticks(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.findall("s:text[@class='tick']", NS)]


def test_stacked_bars_are_as_tall_as_their_values_on_the_axis_they_show() -> None:
    svg = charts.stacked_bars("per-day", "Tickets per day", ["12-01", "12-02", "12-03"],
                              [charts.Series("resolved", [1, 2, 6]), charts.Series("escalated", [0, 3, 2])],
                              x_label="day", y_label="tickets")
    root = parse(svg)
    assert root.get("data-max") == "10"  # the tallest stack is 8: the axis ends at the next round number
    assert ticks(root) == ["0", "2", "4", "6", "8", "10"]
    plot = charts.PLOT_H
    resolved = rects(root, "resolved")
    escalated = rects(root, "escalated")
    assert [float(r.get("height", "")) for r in resolved] == pytest.approx([plot * 0.1, plot * 0.2, plot * 0.6],
                                                                            abs=0.01)
    assert [float(r.get("height", "")) for r in escalated] == pytest.approx([0, plot * 0.3, plot * 0.2], abs=0.01)
    bottom = charts.TOP + plot
    for low, high in zip(resolved, escalated, strict=True):
        # stacked: resolved stands on the axis, escalated on top of it
        assert float(low.get("y", "")) + float(low.get("height", "")) == pytest.approx(bottom, abs=0.01)
        assert float(high.get("y", "")) + float(high.get("height", "")) == pytest.approx(float(low.get("y", "")),
                                                                                         abs=0.01)
    # each value as text too: a title per bar, the stack's total above wide bars
    titles = [r.find("s:title", NS).text for r in resolved]  # type: ignore[union-attr]
    assert titles == ["12-01: 1 resolved", "12-02: 2 resolved", "12-03: 6 resolved"]
    assert [t.text for t in root.findall(".//s:text[@class='value']", NS)] == ["1", "5", "8"]
    assert [t.text for t in root.findall(".//s:g[@class='legend']/s:text", NS)] == ["resolved", "escalated"]


def test_percent_bars_on_a_fixed_axis_and_an_accessible_title() -> None:
    svg = charts.bars("confirm", "Confirmation rate per playbook", ["disk_cleanup", "printer"], [50.0, 12.5],
                      x_label="playbook", y_label="confirmed", unit="%", top=100, name="confirmed", width=460)
    root = parse(svg)
    assert root.get("viewBox") == "0 0 460 290"
    last = rects(root)[-1]
    assert float(last.get("x", "")) + float(last.get("width", "")) <= 460 - charts.RIGHT
    assert [t.text for t in root.findall(".//s:text[@class='value']", NS)] == ["50%", "12.5%"]
    assert ticks(root) == ["0%", "20%", "40%", "60%", "80%", "100%"]
    heights = [float(r.get("height", "")) for r in rects(root)]
    assert heights == pytest.approx([charts.PLOT_H * 0.5, charts.PLOT_H * 0.125], abs=0.01)
    assert root.get("role") == "img"
    labelled = (root.get("aria-labelledby") or "").split()
    assert [root.find(f".//*[@id='{i}']", NS) is not None for i in labelled] == [True, True]
    assert root.find("s:title", NS).text == "Confirmation rate per playbook"  # type: ignore[union-attr]
    assert "disk_cleanup: 50% confirmed" in (root.find("s:desc", NS).text or "")  # type: ignore[union-attr]
    assert [t.text for t in root.findall("s:text[@class='x-label']", NS)] == ["disk_cleanup", "printer"]
    with pytest.raises(ValueError, match="at least the tallest bar"):
        charts.bars("c", "C", ["a"], [120.0], x_label="x", y_label="y", top=100)


def test_a_line_goes_through_each_value() -> None:
    svg = charts.line("rate", "Resolution rate per day", ["a", "b", "c"], [0.0, 50.0, 100.0], x_label="day",
                      y_label="resolved", unit="%", top=100)
    root = parse(svg)
    ys = [float(c.get("cy", "")) for c in root.findall("s:circle", NS)]
    bottom = charts.TOP + charts.PLOT_H
    assert ys == pytest.approx([bottom, bottom - charts.PLOT_H / 2, charts.TOP], abs=0.01)
    points = (root.find("s:polyline", NS).get("points") or "").split()  # type: ignore[union-attr]
    assert [float(p.split(",")[1]) for p in points] == pytest.approx(ys, abs=0.01)
    assert [c.find("s:title", NS).text for c in root.findall("s:circle", NS)] == [  # type: ignore[union-attr]
        "a: 0%", "b: 50%", "c: 100%"]
    assert [t.text for t in root.findall("s:text[@class='value']", NS)] == ["0%", "50%", "100%"]


def test_labels_are_escaped_and_long_ones_shortened() -> None:
    name = '<script>alert("x")</script> & a very long playbook name'
    root = parse(charts.bars("x", "T <b>", [name], [3], x_label="a<b", y_label="c&d"))
    assert root.find("s:title", NS).text == "T <b>"  # type: ignore[union-attr]
    label = root.find("s:text[@class='x-label']", NS).text or ""  # type: ignore[union-attr]
    assert label.startswith("<script>") and label.endswith("…") and len(label) == 16
    assert rects(root)[0].get("data-value") == "3"


def test_many_bars_keep_values_in_titles_and_thin_out_labels() -> None:
    labels = [f"d{i:02d}" for i in range(90)]
    root = parse(charts.bars("m", "M", labels, [i % 7 for i in range(90)], x_label="day", y_label="n"))
    assert len(rects(root)) == 90
    assert root.findall(".//s:text[@class='value']", NS) == []  # no room above 90 bars: the titles carry them
    assert rects(root)[13].find("s:title", NS).text == "d13: 6 value"  # type: ignore[union-attr]
    shown = [t.text for t in root.findall("s:text[@class='x-label']", NS)]
    assert 10 <= len(shown) < 90 and shown[0] == "d00"


def test_empty_and_bad_input() -> None:
    root = parse(charts.bars("e", "Empty", [], [], x_label="x", y_label="y"))
    assert root.find("s:text[@class='empty']", NS).text == "No data in this window."  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="3 values for 2 labels"):
        charts.bars("b", "B", ["a", "b"], [1, 2, 3], x_label="x", y_label="y")
    with pytest.raises(ValueError, match="negative"):
        charts.bars("b", "B", ["a"], [-1], x_label="x", y_label="y")
    with pytest.raises(ValueError, match="at most 400"):
        charts.bars("b", "B", ["a"] * 401, [1] * 401, x_label="x", y_label="y")


@pytest.mark.parametrize(("value", "top"), [(0, 1), (0.3, 0.5), (1, 1), (4, 5), (7, 10), (10, 10), (11, 20),
                                            (250, 500), (501, 1000)])
def test_nice_max(value: float, top: float) -> None:
    assert charts.nice_max(value) == pytest.approx(top)
