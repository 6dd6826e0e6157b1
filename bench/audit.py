"""Audit trail micro benchmark: process CPU per event appended, in this process, on a fresh database.

    .venv/bin/python bench/audit.py                      # SQLite, 2,000 events per figure
    .venv/bin/python bench/audit.py --db both --events 1000

For each database, ``AuditLog.record`` from C coroutines at once (each awaiting its own events one
after the other, as a ticket does; C=1 makes every event its own batch, C=4 lets them share one),
then ``AuditLog.append`` from one thread. The figure is process CPU time (every thread: the loop,
the fsync thread, the writer) per event, which moves less with other load on the machine than wall
time; wall time per event is printed too. The trail is verified afterwards. Event data is shaped
like the pipeline's ``tool_call`` events. No target: compare before/after a change, several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from mspclaw.store.audit import AuditLog
from mspclaw.store.database import Database
from mspclaw.store.db import make_engine, migrate, sqlite_url

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def event_data(i: int) -> dict[str, Any]:
    return {"call_id": f"call_{i:016x}", "agent_id": "ag_0123456789abcdef", "tool": "disk_usage",
            "args": {"path": "/", "depth": 2}, "approval_id": None}


async def one_ticket(audit: AuditLog, base: int, count: int) -> None:
    for i in range(count):
        await audit.record("tool_call", client_id="cl_0123456789ab", session_id="se_0123456789abcdef",
                           data=event_data(base + i))


async def measure(audit: AuditLog, events: int, concurrency: int) -> tuple[float, float, int]:
    per = events // concurrency
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one_ticket(audit, 1_000_000 * (k + 1), per) for k in range(concurrency)))
    n = per * concurrency
    return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n, n


async def run(kind: str, engine: Engine, work: Path, events: int, concurrency: list[int]) -> None:
    migrate(engine)
    audit = AuditLog(Database(engine), work / "audit")
    await one_ticket(audit, 0, 50)  # warm-up: connections, statement caches, the day file
    total = 50
    for c in concurrency:
        cpu, wall, n = await measure(audit, events, c)
        total += n
        print(f"{kind:9} record, {c} at once: {cpu * 1e6:6.0f} us CPU/event  {wall * 1e6:6.0f} us wall/event  ({n})")
    n = events // 4

    def appends() -> None:  # the blocking door, from a thread as sync callers use it (never on the loop)
        for _ in range(n):
            audit.append("login", actor="tech@example.com", data={"method": "password", "remote": "10.0.0.1"})

    cpu = time.process_time()
    await asyncio.to_thread(appends)
    total += n
    print(f"{kind:9} append, one thread: {(time.process_time() - cpu) / n * 1e6:6.0f} us CPU/event  ({n})")
    report = audit.verify()
    assert report.events == total, (report, total)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    p.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", POSTGRES_URL))
    opts = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="mspclaw-audit-bench-") as tmp:
        work = Path(tmp)
        if opts.db in ("sqlite", "both"):
            (work / "sqlite").mkdir()
            engine = make_engine(sqlite_url(work / "sqlite"))
            try:
                asyncio.run(run("sqlite", engine, work / "sqlite", opts.events, opts.concurrency))
            finally:
                engine.dispose()
        if opts.db in ("postgres", "both"):
            schema = f"bench_audit_{secrets.token_hex(4)}"
            admin = make_engine(opts.postgres_url)
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            sep = "&" if "?" in opts.postgres_url else "?"
            engine = make_engine(f"{opts.postgres_url}{sep}options=-csearch_path%3D{schema}")
            (work / "postgres").mkdir()
            try:
                asyncio.run(run("postgres", engine, work / "postgres", opts.events, opts.concurrency))
            finally:
                engine.dispose()
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()


if __name__ == "__main__":
    main()
