"""Call ids are the agent journal's idempotency key: they must never repeat, in a process or across processes."""

from __future__ import annotations

import os
import subprocess
import sys

from mspclaw.dispatch.hub import new_call_id


def test_call_ids_do_not_repeat_within_a_process() -> None:
    ids = [new_call_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("call_") for i in ids)


def test_call_ids_differ_between_processes_and_after_a_fork() -> None:
    code = "from mspclaw.dispatch.hub import new_call_id; print(new_call_id())"
    others = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
              for _ in range(3)}
    mine = new_call_id()
    assert len(others) == 3 and mine not in others
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids must come from another prefix than the parent's
        os.write(write, new_call_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    assert child.rsplit("_", 1)[0] != new_call_id().rsplit("_", 1)[0]
