"""What every server start pays before its first ticket: building the playbook matcher and reading the roster.

    .venv/bin/python bench/build_cost.py              # 5 rounds
    .venv/bin/python bench/build_cost.py --rounds 2   # a smoke run

What runs, in this one process (pure Python, no I/O but reading the library):

* **matcher**: ``Matcher(load_dir())`` as a server builds it (for each start and registry reload, on a new list
  of the same playbooks) against the same matcher built whole (triage and intent lists passed in, which are
  never shared), after a first build has warmed the process (Snowball's and the stemmer's caches). Target: a
  server's matcher at most 0.1 of a whole build (the lexicon of the same trigger texts is built once per process);
* **roster**: ``parse`` of a 200-technician ``techs.yaml`` (libyaml) against PyYAML's pure-Python ``safe_load``
  of the same text. Target: at most 0.5.

Each figure is the median of ``--rounds`` CPU times (``thread_time``: other processes on the machine do not
inflate it), with the ratio and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import yaml

from mspclaw.pipeline.techs import parse
from mspclaw.playbooks.intent import Intent
from mspclaw.playbooks.loader import load_dir
from mspclaw.playbooks.matcher import Matcher
from mspclaw.playbooks.triage import Triage


def cpu(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.thread_time()
        run()
        times.append(time.thread_time() - start)
    return statistics.median(times)


def roster(techs: int) -> str:
    lines = ["techs:"]
    for i in range(techs):
        lines += [f"  - name: Technician {i}", f"    email: tech{i}@msp.example", "    role: tech",
                  f"    clients: [\"Client {i % 40}\", \"Client {(i + 7) % 40}\"]",
                  "    on_duty: [\"mon-fri 08:00-18:00\", \"sat 09:00-13:00\"]", "    timezone: Europe/Berlin"]
    lines += ["channels:"] + [f"  - name: ops{i}\n    kind: teams\n    url: https://example.invalid/{i}\n"
                              f"    clients: [cl_{i}]" for i in range(20)]
    return "\n".join(lines) + "\n"


def report(name: str, value: float, baseline: float, target: float) -> bool:
    ratio = value / baseline
    ok = ratio <= target
    print(f"{name}: {value * 1000:.1f} ms CPU against {baseline * 1000:.1f} ms: ratio {ratio:.3f} "
          f"(target at most {target:g}) {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    library = load_dir()
    start = time.thread_time()
    Matcher(library)
    print(f"first matcher in the process: {(time.thread_time() - start) * 1000:.1f} ms CPU (Snowball and stems cold)")
    whole = cpu(lambda: Matcher(load_dir(), triage=Triage(), intent=Intent()), args.rounds)
    server = cpu(lambda: Matcher(load_dir()), args.rounds)
    text = roster(200)
    pure = cpu(lambda: yaml.safe_load(text), args.rounds)
    fast = cpu(lambda: parse(text, "techs.yaml"), args.rounds)
    results = [report("matcher, as a server builds it", server, whole, 0.1),
               report("roster parse (200 technicians)", fast, pure, 0.5)]
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
