"""A real MSPclaw server process whose model is scripted, for the kill-and-restart test.

Run as ``python -m tests.resume_server`` with ``MSPCLAW_*`` settings in the environment. The
model decides from the conversation alone (no state in the process), as a provider would, so a
restarted process continues any session; the scenario is named in the ticket body.
"""

from __future__ import annotations

from mspclaw.api.server import run
from mspclaw.engine.messages import Message, ModelRequest, ModelResponse, ToolDef, ToolReturn, UserPrompt
from mspclaw.engine.models.function import FunctionModel, call
from mspclaw.settings import Settings
from mspclaw.wiring import build


def script(messages: list[Message], tools: list[ToolDef]) -> ModelResponse:
    prompt = next(p.text for m in messages if isinstance(m, ModelRequest) for p in m.parts
                  if isinstance(p, UserPrompt))
    seen = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturn)]
    if seen:
        last = seen[-1]
        outcome = last.error or str(last.content)
        return call("resolve", {"summary": f"{last.name}: {outcome}", "reply": "done."})
    if "scenario question" in prompt:
        return call("ask_user", {"question": "Is the printer turned on?"})
    days = 1 if "scenario inflight" in prompt else 7
    return call("clear_temp_files", {"dry_run": False, "older_than_days": days})


def main() -> None:
    settings = Settings()
    services = build(settings, model=FunctionModel(script, name="function:resume"))
    run(services, host="127.0.0.1", port=settings.port, log_level="warning")  # agents on MSPCLAW_AGENT_PORT


if __name__ == "__main__":
    main()
