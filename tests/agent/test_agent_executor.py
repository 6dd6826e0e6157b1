"""The executor's gates: every refusal a user (or an attacker between server and agent) would meet."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.agent.conftest import APPROVAL_SIGNER, APPROVED_CALL, grant

from mspclaw.agent.executor import Executor
from mspclaw.agent.journal import Journal
from mspclaw.agent.tools import JsonObject, ToolContext, bind, tool_registry
from mspclaw.errors import ApprovalRequired, BadSignature, InvalidArguments, ToolFailed, ToolTimeout, UnknownTool
from mspclaw.pipeline.approvals import ApprovalSigner
from mspclaw.protocol.frames import Approval, ToolCall, ToolResult
from mspclaw.protocol.signing import approval_message, sign_call
from mspclaw.tools.catalogue import NoArgs

if TYPE_CHECKING:
    from tests.agent.conftest import MakeFile, SignCall


def run(executor: Executor, call: ToolCall) -> ToolResult:
    return asyncio.run(executor.execute(call))


def error_code(result: ToolResult) -> str:
    assert result.ok is False and result.error is not None
    return result.error.code


def error_message(result: ToolResult) -> str:
    assert result.error is not None
    return result.error.message


def test_a_signed_call_runs_the_real_tool(executor: Executor, signed: SignCall) -> None:
    result = run(executor, signed("disk_usage", {"paths": ["/"]}))
    assert result.ok, result.error
    assert isinstance(result.output, dict)
    [fs] = result.output["filesystems"]
    assert fs["mount_point"] == "/"
    assert result.duration_ms >= 0


def test_a_call_signed_with_another_key_is_refused(executor: Executor) -> None:
    call = sign_call(b"k" * 32, ToolCall(call_id="c1", tool="system_info", deadline=time.time() + 30))
    assert error_code(run(executor, call)) == BadSignature.code


def test_altered_arguments_break_the_signature(executor: Executor, signed: SignCall) -> None:
    call = signed("disk_usage", {"paths": ["/"]})
    tampered = call.model_copy(update={"args": {"paths": ["/etc"]}})
    assert error_code(run(executor, tampered)) == BadSignature.code


def test_an_approval_added_after_signing_is_refused(
    executor: Executor, signed: SignCall, make_file: MakeFile, temp_root: Path
) -> None:
    old = make_file(temp_root / "old.log", 10, 30)
    call = signed("clear_temp_files", {"older_than_days": 7, "dry_run": False})
    forged = call.model_copy(update={"approval": Approval(approval_id="a1", approver="mallory", decided_at=0)})
    assert error_code(run(executor, forged)) == BadSignature.code
    assert old.exists()


def test_an_expired_deadline_is_a_timeout(executor: Executor, signed: SignCall) -> None:
    result = run(executor, signed("system_info", deadline_in=-1))
    assert error_code(result) == ToolTimeout.code
    assert "deadline" in error_message(result)


def test_an_unknown_tool_is_refused(executor: Executor, signed: SignCall) -> None:
    result = run(executor, signed("format_disk"))
    assert error_code(result) == UnknownTool.code
    assert "format_disk" in error_message(result)


def test_a_catalogue_tool_not_implemented_here_is_unknown(
    key: bytes, journal: Journal, context: ToolContext, signed: SignCall
) -> None:
    executor = Executor(key=key, registry={}, journal=journal, context=context)  # as on macOS today
    assert executor.offered_tools() == []
    assert error_code(run(executor, signed("system_info"))) == UnknownTool.code


def test_invalid_arguments_name_the_field(executor: Executor, signed: SignCall) -> None:
    result = run(executor, signed("top_processes", {"sort_by": "colour", "limit": 10}))
    assert error_code(result) == InvalidArguments.code
    assert "sort_by" in error_message(result)
    extra = run(executor, signed("clear_temp_files", {"dry_run": True, "path": "/etc"}))
    assert error_code(extra) == InvalidArguments.code
    assert "path" in error_message(extra)


def test_destructive_call_without_approval_is_refused_and_deletes_nothing(
    executor: Executor, signed: SignCall, make_file: MakeFile, temp_root: Path
) -> None:
    old = make_file(temp_root / "old.log", 100, 30)
    result = run(executor, signed("clear_temp_files", {"older_than_days": 7, "dry_run": False}))
    assert error_code(result) == ApprovalRequired.code
    assert old.exists()


def test_dry_run_needs_no_approval_and_an_approved_call_deletes(
    executor: Executor, signed: SignCall, make_file: MakeFile, temp_root: Path
) -> None:
    old = make_file(temp_root / "old.log", 100, 30)
    preview = run(executor, signed("clear_temp_files", {"older_than_days": 7, "dry_run": True}))
    assert preview.ok and preview.output["files"] == 1 and old.exists()
    args = {"older_than_days": 7, "dry_run": False}
    done = run(executor, signed("clear_temp_files", args, call_id=APPROVED_CALL,
                                approval=grant("clear_temp_files", args)))
    assert done.ok and done.output["deleted"] == 1
    assert not old.exists()


def test_an_approval_must_be_signed_bound_to_this_call_and_this_agent_and_current(
    executor: Executor, signed: SignCall, make_file: MakeFile, temp_root: Path
) -> None:
    old = make_file(temp_root / "old.log", 100, 30)
    args = {"older_than_days": 7, "dry_run": False}
    other = {"older_than_days": 1, "dry_run": False}
    good = grant("clear_temp_files", args)
    cases = {
        "not signed by the server": good.model_copy(update={"signature": ""}),
        "does not verify": grant("clear_temp_files", args, signer=ApprovalSigner(bytes(32))),
        "for other arguments": grant("clear_temp_files", other),
        "for another agent": grant("clear_temp_files", args, agent_id="ag_other"),
        "expired": grant("clear_temp_files", args, expires_in=-5),
        "is for 'disk_usage'": grant("disk_usage", args),
        "altered after signing": good.model_copy(update={"approver": "mallory"}),
        "given for another call": grant("clear_temp_files", args, call_id="call-other"),
        "not bound to a tool call": unbound(good),
    }
    for why, approval in cases.items():
        result = run(executor, signed("clear_temp_files", args, call_id=APPROVED_CALL, approval=approval))
        assert error_code(result) == ApprovalRequired.code, why
        assert result.error is not None
        assert why.split()[-1].strip("'") in result.error.message or why == "altered after signing", (why, result)
    assert old.exists(), "no refused approval may delete anything"
    done = run(executor, signed("clear_temp_files", args, call_id=APPROVED_CALL, approval=good))
    assert done.ok and not old.exists()


def unbound(approval: Approval) -> Approval:
    """``approval`` as a server older than call binding signed it (``mspclaw-approval-v1``, no call id)."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # APPROVAL_SIGNER's private half
    assert key.public_key().public_bytes_raw() == APPROVAL_SIGNER.public_key
    return approval.model_copy(update={"signature": key.sign(approval_message(approval)).hex()})


def test_a_grant_for_one_call_is_refused_for_another_call_with_the_same_tool_args_and_agent(
    executor: Executor, signed: SignCall, make_file: MakeFile, temp_root: Path
) -> None:
    old = make_file(temp_root / "old.log", 100, 30)
    args = {"older_than_days": 7, "dry_run": False}
    first = grant("clear_temp_files", args, call_id="call_s1_3")
    # the same grant, lifted onto a second call with identical tool, arguments, agent and expiry
    second = run(executor, signed("clear_temp_files", args, call_id="call_s1_4", approval=first))
    assert error_code(second) == ApprovalRequired.code
    assert second.error is not None and "another call" in second.error.message and "call_s1_4" in second.error.message
    assert old.exists()
    done = run(executor, signed("clear_temp_files", args, call_id="call_s1_3", approval=first))
    assert done.ok and not old.exists()


def test_a_slow_tool_times_out_at_the_deadline(
    key: bytes, journal: Journal, context: ToolContext, signed: SignCall
) -> None:
    release = threading.Event()

    def stuck(args: NoArgs, ctx: ToolContext) -> JsonObject:
        release.wait(10)
        return {}

    executor = Executor(key=key, registry={"system_info": bind(NoArgs, stuck)}, journal=journal, context=context)
    started = time.monotonic()
    result = run(executor, signed("system_info", deadline_in=0.3))
    release.set()
    assert error_code(result) == ToolTimeout.code
    assert time.monotonic() - started < 2


def test_tool_failures_become_results_not_crashes(
    key: bytes, journal: Journal, context: ToolContext, signed: SignCall
) -> None:
    def failing(args: NoArgs, ctx: ToolContext) -> JsonObject:
        raise ToolFailed("the printer spooler is not installed")

    def buggy(args: NoArgs, ctx: ToolContext) -> JsonObject:
        return {"ratio": 1 / 0}

    registry = tool_registry("linux") | {"system_info": bind(NoArgs, failing), "network_status": bind(NoArgs, buggy)}
    executor = Executor(key=key, registry=registry, journal=journal, context=context)
    failed = run(executor, signed("system_info"))
    assert error_code(failed) == ToolFailed.code
    assert error_message(failed) == "the printer spooler is not installed"
    crashed = run(executor, signed("network_status"))
    assert error_code(crashed) == ToolFailed.code
    assert error_message(crashed).startswith("ZeroDivisionError")
