"""The matcher on every labelled corpus in ``tests/data``, per source and language, with the held-out folds apart.

Real corpora (``tickets_real_*.jsonl``, sources and licences in ``tests/data/REAL_SOURCES.md``) carry a
``fold`` (sha1 of the ticket's address, mod 5): rules are written looking at folds 0-2 only, and the
figure that counts is folds 3-4. Corpora written here have no folds; they are reported whole.

    .venv/bin/python bench/triage_sources.py [--markdown]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from mspclaw.playbooks.evaluation import NOT_AUTOMATABLE
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
HELD_OUT = frozenset({3, 4})


class Tally:
    def __init__(self) -> None:
        self.n = self.right = self.must_not = self.false_auto = self.automated = self.auto_right = 0

    def add(self, label: str | None, got: str | None) -> None:
        self.n += 1
        self.right += got == label
        if label is None:
            self.must_not += 1
            self.false_auto += got is not None
        if got is not None:
            self.automated += 1
            self.auto_right += got == label

    def row(self) -> str:
        top1 = f"{self.right / self.n:.1%}" if self.n else "-"
        precision = f"{self.auto_right / self.automated:.1%}" if self.automated else "-"
        return f"{self.n} | {top1} | {self.false_auto} of {self.must_not} | {precision}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    matcher = Matcher(load_dir())
    tallies: dict[tuple[str, str, str], Tally] = defaultdict(Tally)
    for path in sorted(DATA.glob("tickets*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            label = row.get("label")
            label = None if label is None or str(label).lower() in NOT_AUTOMATABLE else str(label)
            got = matcher.match(row.get("subject", ""), row.get("body", ""), row.get("os")).category
            source = path.stem.removeprefix("tickets_").removeprefix("tickets") or "main"
            lang = row.get("lang", "-")
            part = "all" if "fold" not in row else ("held-out" if row["fold"] in HELD_OUT else "tuned")
            for key in ((source, lang, part), (source, "all", part)):
                tallies[key].add(label, got)
    header = "source | lang | folds | tickets | top-1 | automated of must-not | right when automated"
    print(header if args.markdown else header.replace(" | ", "\t"))
    if args.markdown:
        print("|".join(["---"] * 7))
    for (source, lang, part), tally in sorted(tallies.items()):
        if lang == "all" and sum(1 for s, _, p in tallies if s == source and p == part) <= 2:
            continue  # one language: its own row says it
        line = f"{source} | {lang} | {part} | {tally.row()}"
        print(line if args.markdown else line.replace(" | ", "\t"))


if __name__ == "__main__":
    main()
