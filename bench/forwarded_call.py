"""Forwarded-call benchmark: a tool call relayed to another replica through Redis against a local call.

    .venv/bin/python bench/forwarded_call.py                     # 4,000 calls of each kind, 4 rounds ABBA
    .venv/bin/python bench/forwarded_call.py --calls 300 --rounds 2   # a smoke run
    .venv/bin/python bench/forwarded_call.py --redis redis://10.0.0.5:6379/0   # another Redis
    .venv/bin/python bench/forwarded_call.py --transport redis   # forwarded through Redis pub/sub only

Two server replicas run in this process, each a :class:`~mspclaw.dispatch.hub.Hub` with a
:class:`~mspclaw.dispatch.cluster.Cluster` on the same Redis (a random key prefix, deleted at the end) and
a :class:`~mspclaw.dispatch.relay.ReplicaRelay` on a loopback port (unless ``--transport redis``).
One agent connects to replica A over a real WebSocket on loopback, through the product's agent listener
(``api/agent_listener.py``); it runs in a process of its own (an agent is on another machine: a local call
crosses a network too), the sans-I/O ``AgentConnection`` answering each signed ``tool_call`` after checking
its signature, as the agent's executor does. The **local** call is
``A.for_client(c).call_tool(...)``; the **forwarded** call is ``B.for_client(c).call_tool(...)``: B
looks the holder up and sends the call over its authenticated TCP connection to A (or publishes it on
A's channel), A runs it through its hub and answers the same way. Calls are sequential (round trip), in
rounds alternating local and forwarded (ABBA).
Target: forwarded p50 at most 2x the local p50 of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from mspclaw.api.agent_listener import AgentListener
from mspclaw.dispatch.cluster import Cluster
from mspclaw.dispatch.hub import AgentIdentity, Hub
from mspclaw.dispatch.relay import ReplicaRelay
from mspclaw.errors import AuthError
from mspclaw.protocol.connection import AgentConnection, FrameReceived
from mspclaw.protocol.frames import MAX_FRAME_BYTES, PROTOCOL_VERSION, Hello, ToolCall, ToolResult
from mspclaw.protocol.signing import Signer

HOST = "127.0.0.1"
TOOL = "system_info"
TARGET = 2.0


def pct(sorted_values: list[float], q: float) -> float:
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


async def run_agent(port: int, identity: AgentIdentity, token: str) -> None:
    ws: ClientConnection
    async with connect(f"ws://{HOST}:{port}/ws/agent", compression=None, ping_interval=None, proxy=None,
                       max_size=4 * MAX_FRAME_BYTES, additional_headers={"Authorization": f"Bearer {token}"},
                       user_agent_header=None) as ws:
        conn = AgentConnection(now=time.time(), heartbeat_interval=30)
        signer = Signer(identity.signing_key)
        conn.start(Hello(protocol=PROTOCOL_VERSION, agent_id=identity.agent_id, client_id=identity.client_id,
                         role="device", hostname="bench-agent", os="linux", tools=[TOOL]))
        for text in conn.data_to_send():
            await ws.send(text)
        with contextlib.suppress(ConnectionClosed):
            async for data in ws:
                for event in conn.receive(data, time.time()):
                    if isinstance(event, FrameReceived) and isinstance(event.frame, ToolCall):
                        ok = signer.verify(event.frame)
                        conn.result(ToolResult(call_id=event.frame.call_id, ok=ok, output={"os": "linux"}))
                for text in conn.data_to_send():
                    await ws.send(text)


async def timed(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        await call()
        out.append(clock() - t0)
    return out


async def main(opts: argparse.Namespace) -> dict[str, object]:
    prefix = f"bench-{secrets.token_hex(4)}:"
    secret = secrets.token_bytes(32)  # the replicas' shared relay secret
    relays = {name: ReplicaRelay(secret, host=HOST) if opts.transport == "direct" else None
              for name in ("replica-a", "replica-b")}
    a = Cluster.from_url(opts.redis, replica_id="replica-a", prefix=prefix, relay=relays["replica-a"])
    b = Cluster.from_url(opts.redis, replica_id="replica-b", prefix=prefix, relay=relays["replica-b"])
    hub_a, hub_b = Hub(cluster=a), Hub(cluster=b)
    tasks = [asyncio.create_task(a.run(hub_a)), asyncio.create_task(b.run(hub_b))]
    identity = AgentIdentity("ag_bench", "cl_bench", "device", secrets.token_bytes(32))
    token = secrets.token_urlsafe(16)

    def authenticate(header: str | None, remote: str) -> AgentIdentity:
        if header != f"Bearer {token}":
            raise AuthError("bad credential")
        return identity

    listener = await AgentListener(authenticate, hub_a.serve).start(HOST, 0)
    agent = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "_agent", str(listener.port), identity.agent_id, identity.client_id,
        identity.signing_key.hex(), token, "--loop", opts.loop)
    try:
        give_up = time.monotonic() + 20
        while await b.holder(identity.agent_id) != ("replica-a", "cl_bench"):
            if time.monotonic() > give_up:
                raise RuntimeError("the agent did not connect")
            await asyncio.sleep(0.01)
        local, forwarded = hub_a.for_client("cl_bench"), hub_b.for_client("cl_bench")

        async def call_local() -> object:
            return await local.call_tool(identity.agent_id, TOOL, {}, timeout=10)

        async def call_forwarded() -> object:
            return await forwarded.call_tool(identity.agent_id, TOOL, {}, timeout=10)

        await timed(call_local, 200)  # warm up both paths
        await timed(call_forwarded, 200)
        gc.collect()
        gc.freeze()
        samples: dict[str, list[float]] = {"local": [], "forwarded": []}
        order = ["local", "forwarded", "forwarded", "local"] * ((opts.rounds + 1) // 2)
        per_round = max(1, opts.calls // opts.rounds)
        cpu0 = time.process_time()
        for kind in order[: 2 * opts.rounds]:
            samples[kind] += await timed(call_local if kind == "local" else call_forwarded, per_round)
        cpu = time.process_time() - cpu0
    finally:
        await listener.close()
        with contextlib.suppress(ProcessLookupError):
            agent.terminate()
        await agent.wait()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await a.aclose()
        await b.aclose()
        redis = Redis.from_url(opts.redis)
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    figures: dict[str, object] = {"transport": opts.transport}
    for kind, values in samples.items():
        values.sort()
        figures[kind] = {"n": len(values), "p50_us": round(pct(values, 0.5) * 1e6),
                         "p99_us": round(pct(values, 0.99) * 1e6), "mean_us": round(statistics.fmean(values) * 1e6)}
    ratio = pct(samples["forwarded"], 0.5) / pct(samples["local"], 0.5)
    figures["ratio_p50"] = round(ratio, 2)
    figures["target_met"] = ratio <= TARGET
    figures["cpu_s"] = round(cpu, 2)
    figures["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)  # _agent PORT AGENT CLIENT KEY TOKEN
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the Redis both replicas share")
    parser.add_argument("--calls", type=int, default=4000, help="calls of each kind, over all rounds")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per kind, alternated ABBA")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--transport", choices=["direct", "redis"], default="direct",
                        help="forwarded calls over the replicas' direct connection, or through Redis pub/sub only")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse()
    run: Callable[..., dict[str, object]] = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        run = uvloop.run
    if args.role and args.role[0] == "_agent":
        port, agent_id, client_id, key, secret = args.role[1:6]
        with contextlib.suppress(KeyboardInterrupt):
            run(run_agent(int(port), AgentIdentity(agent_id, client_id, "device", bytes.fromhex(key)), secret))
        sys.exit(0)
    result = run(main(args))
    print(json.dumps(result, indent=2))
    local_p50 = result["local"]["p50_us"]  # type: ignore[index]
    forwarded_p50 = result["forwarded"]["p50_us"]  # type: ignore[index]
    print(f"local p50 {local_p50} us, forwarded p50 {forwarded_p50} us: {result['ratio_p50']}x "
          f"(target at most {TARGET:g}x): {'met' if result['target_met'] else 'NOT met'}")
    sys.exit(0 if result["target_met"] else 1)
