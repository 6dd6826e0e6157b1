"""The CUPS parsers against every line shape CUPS's own ``lpstat`` source prints.

No Mac or CUPS server runs here, so these lines are built from the ``printf`` formats in
apple/cups ``systemv/lpstat.c`` (commit a8968fc4257322b1e4e191c4bccedea98d7b053e,
``show_printers``, ``show_jobs``, ``show_accepting``) with the C locale our runner sets
(``LC_ALL=C``: ``%c`` dates). This is the format's source, not a capture; it catches states a
hand-written fixture never showed, such as "is holding new jobs", which the parser used to drop.
"""

from __future__ import annotations

from pathlib import Path

from tests.recorded import Recorded

from mspclaw.agent.tools import cups

DATE = "Tue Apr 16 10:02:11 2024"  # strftime("%c") in the C locale


def test_every_printer_state_lpstat_prints_is_read() -> None:
    text = (f"printer Idle_One is idle.  enabled since {DATE}\n"
            f"printer Held_One is holding new jobs.  enabled since {DATE}\n"
            f"printer Busy_One now printing Busy_One-17.  enabled since {DATE}\n"
            f"printer Stopped_One disabled since {DATE} -\n"
            "\treason unknown\n"
            f"printer Paused_One disabled since {DATE} -\n"
            "\tPaused\n")
    printers = {p["name"]: p for p in cups.parse_printers(text)}
    assert list(printers) == ["Idle_One", "Held_One", "Busy_One", "Stopped_One", "Paused_One"]
    assert {n: p["state"] for n, p in printers.items()} == {
        "Idle_One": "idle", "Held_One": "holding", "Busy_One": "printing", "Stopped_One": "paused",
        "Paused_One": "paused"}
    assert printers["Stopped_One"]["reason"] == "reason unknown" and not printers["Stopped_One"]["enabled"]


def test_jobs_and_accepting_lines_in_lpstat_formats() -> None:
    # "%-23s %-13s %8.0f   %s": id, user, 1024 * k-octets, date
    jobs = cups.parse_jobs(f"{'Held_One-212':<23} {'maria':<13} {1024.0 * 1025:8.0f}   {DATE}\n")
    assert jobs == [{"id": "Held_One-212", "printer": "Held_One", "user": "maria", "size_bytes": 1049600,
                     "submitted": DATE}]
    accepting = cups.parse_accepting(f"Held_One accepting requests since {DATE}\n"
                                     f"Paused_One not accepting requests since {DATE} -\n\tPaused\n")
    assert accepting == {"Held_One": True, "Paused_One": False}


def test_a_printer_holding_new_jobs_needs_attention(tmp_path: Path) -> None:
    source = ("# source: written to format: apple/cups systemv/lpstat.c (show_printers, show_jobs, "
              "show_accepting) printf formats, C locale\n# os: format of CUPS 2.x (not a capture)\n# exit: 0\n")
    for name, argv, out in (
            ("lpstat_p.txt", '["lpstat", "-p"]', f"printer Held_One is holding new jobs.  enabled since {DATE}\n"),
            ("lpstat_o.txt", '["lpstat", "-o"]', ""),
            ("lpstat_a.txt", '["lpstat", "-a"]', f"Held_One accepting requests since {DATE}\n")):
        (tmp_path / name).write_text(f"# command: {argv}\n{source}--- stdout ---\n{out}")
    queues = cups.printer_queues(Recorded("macos", tmp_path))
    assert queues["attention"] == ["Held_One"] and queues["paused"] == []
    assert queues["printers"][0]["state"] == "holding" and queues["printers"][0]["enabled"]
