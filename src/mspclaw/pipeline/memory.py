"""What MSPclaw learns about a device, from tool results, end users' answers and tickets.

:func:`facts_from_tool` turns a tool's output into facts (OS version, model, serial, host name);
:class:`DeviceLearning` stores them with their source and audits what changed (keys only: the
values can be personal data). The engine asks :meth:`DeviceLearning.known` before asking the end
user anything, and puts :meth:`DeviceLearning.context` into its prompt from the second ticket on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mspclaw.pipeline.offload import run_store
from mspclaw.store.audit import AuditLog
from mspclaw.store.devices import DeviceMemory, telling

QUESTION_FACTS = {
    "name": "user_name", "user_name": "user_name", "email": "email", "e-mail": "email",
    "department": "department", "floor": "location", "location": "location", "office": "location",
    "primary_user": "primary_user",
}
"""Question keys the engine may ask, mapped to the fact that answers them."""


def _dig(data: Mapping[str, Any], *path: str) -> Any:
    cur: Any = data
    for part in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def facts_from_tool(tool: str, output: Mapping[str, Any]) -> dict[str, Any]:
    """The device facts a tool's output tells, by what the output holds (never by provider)."""
    facts: dict[str, Any] = {}
    if tool == "system_info":
        facts["hostname"] = output.get("hostname")
        facts["os_version"] = _dig(output, "os", "pretty_name") or _dig(output, "os", "version")
        facts["cpu_count"] = _dig(output, "cpu", "count")
        facts["memory_bytes"] = _dig(output, "memory", "total_bytes")
    for key, fact in (("model", "model"), ("hardware_model", "model"), ("serial", "serial"),
                      ("serial_number", "serial")):
        value = output.get(key) if key in output else _dig(output, "hardware", key)
        if isinstance(value, str | int) and str(value).strip():
            facts[fact] = value
    return {k: v for k, v in facts.items() if v not in (None, "")}


class DeviceLearning:
    def __init__(self, memory: DeviceMemory, audit: AuditLog) -> None:
        self.memory, self._audit = memory, audit

    async def record(self, device_id: str, facts: Mapping[str, Any], *, source: str, client_id: str,
                     session_id: str | None = None) -> list[str]:
        """Remember ``facts`` of a device and audit which keys changed; the event loop runs while the
        audit line is made durable. Facts with nothing to store (most tool results') cost no store call."""
        if not telling(facts):
            return []
        changed = await run_store(self.memory, self.memory.remember, device_id, facts, source=source)
        if changed:
            await self._audit.record("device_facts_learned", client_id=client_id, session_id=session_id,
                                     data={"device_id": device_id, "keys": changed, "source": source})
        return changed

    async def learn_from_tool(self, device_id: str, tool: str, output: Mapping[str, Any], *, client_id: str,
                              session_id: str) -> list[str]:
        return await self.record(device_id, facts_from_tool(tool, output), source=f"tool:{tool}", client_id=client_id,
                          session_id=session_id)

    async def learn_from_answer(self, device_id: str, question_key: str, answer: str, *, client_id: str,
                                session_id: str) -> list[str]:
        fact = QUESTION_FACTS.get(question_key.lower(), question_key.lower())
        return await self.record(device_id, {fact: answer}, source=f"answer:{question_key}", client_id=client_id,
                          session_id=session_id)

    async def learn_from_ticket(self, device_id: str, requester: str, *, client_id: str, session_id: str,
                                known: Mapping[str, str] | None = None) -> list[str]:
        """The requester of a ticket routed to this device is its user, unless one is known.

        ``known``: the device's facts, when the caller has just read them."""
        if "@" not in requester:
            return []
        known = await run_store(self.memory, self.memory.facts, device_id) if known is None else known
        facts = {} if "email" in known else {"email": requester.lower()}
        if "primary_user" not in known:
            facts["primary_user"] = requester.lower()
        return await self.record(device_id, facts, source="ticket", client_id=client_id, session_id=session_id)

    def known(self, device_id: str, question_key: str) -> str | None:
        """The stored answer to a question, so it is never asked twice."""
        fact = QUESTION_FACTS.get(question_key.lower(), question_key.lower())
        return self.memory.facts(device_id).get(fact)

    def context(self, device_id: str) -> dict[str, str]:
        return self.memory.facts(device_id)
