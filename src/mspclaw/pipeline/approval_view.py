"""What a technician is shown about an approval request: facts the server derives, then the rest, labelled.

:func:`approval_facts` states the tool, its catalogue description, what these exact arguments make
it do (a preview flag that is false means it acts), each argument with the catalogue's meaning,
where it runs, and how the requester was verified (from the ``requested_by``/``verified_by`` that
:class:`~mspclaw.pipeline.requester.ActForRequester` bound, never from text). Nothing in it comes
from the model.

:func:`approval_statement` is the stored ``reason``: the server's verification sentence first, then
the latest finding and the assistant's note, each on its own line, labelled, flattened to one line
and quoted, so that no model text can pass for a statement of the server ("PREVIEW ONLY ...").
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from mspclaw.errors import InvalidArguments
from mspclaw.tools import CATALOGUE

NOTE_LABEL = "The assistant's note (unverified): "
PLAYBOOK_LABEL = "The playbook's reason for this step: "
FINDING_LABEL = "Latest finding (summarised from tool output): "
NOTE_LIMIT = 300
_VERIFIED_BY = {"psa_contact": "is the PSA contact on the ticket",
                "device_confirmation": "confirmed the request on their own enrolled device"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\u200b-\u200f\u202a-\u202e]+")


class ArgumentFact(BaseModel):
    name: str
    value: Any
    meaning: str


class RequesterFact(BaseModel):
    requested_by: str
    verified_by: list[str]
    """In words: "is the PSA contact on the ticket", "confirmed the request on their own enrolled device"."""


class ApprovalFacts(BaseModel):
    """What the server knows about a gated call; shown before anything else."""

    tool: str
    description: str
    effect: str
    acts: bool
    """True when the call changes something (not a preview)."""
    arguments: list[ArgumentFact]
    runs_on: str
    target: str
    requester: RequesterFact | None = None


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".") + "."


def approval_facts(tool: str, args: dict[str, Any], target: str) -> ApprovalFacts:
    spec = CATALOGUE.get(tool)
    if spec is None:
        return ApprovalFacts(tool=tool, description="not a tool of the catalogue", acts=True, runs_on="unknown",
                             effect="Unknown tool: deny it.", target=target,
                             arguments=[ArgumentFact(name=k, value=v, meaning="") for k, v in args.items()])
    try:
        parsed = spec.validate(args)
    except InvalidArguments as exc:
        return ApprovalFacts(tool=tool, description=spec.description, acts=True, runs_on=spec.runs_on,
                             effect=f"The arguments do not fit the catalogue ({exc.message}): deny it.", target=target,
                             arguments=[ArgumentFact(name=k, value=v, meaning="") for k, v in args.items()])
    where = "the end user's device" if spec.runs_on == "device" else "the client's site (directory, accounts)"
    flag = spec.preview_flag
    if spec.is_preview(parsed):
        effect, acts = f"Preview only: {flag} is true, so it only reports what it would do; it changes nothing.", False
    elif spec.destructive:
        effect = f"Changes {where}: {_first_sentence(spec.description)}"
        effect += f" {flag} is false: this is not a preview, it acts." if flag else ""
        acts = True
    else:
        effect = (f"Runs on {where}: {_first_sentence(spec.description)} Not destructive by the catalogue; the "
                  "playbook asks for approval before it runs.")
        acts = True
    values = parsed.model_dump(mode="json")
    arguments = []
    for name, field in spec.args.model_fields.items():
        meaning = field.description or ""
        if name == flag:
            meaning += " false: it acts, this is not a preview." if values.get(name) is False else " true: preview."
        arguments.append(ArgumentFact(name=name, value=values.get(name), meaning=meaning.strip()))
    requester = None
    if isinstance(values.get("requested_by"), str) and values["requested_by"]:
        methods = values.get("verified_by") or []
        requester = RequesterFact(requested_by=values["requested_by"],
                                  verified_by=[_VERIFIED_BY.get(str(m), str(m)) for m in methods])
    return ApprovalFacts(tool=tool, description=spec.description, effect=effect, acts=acts, arguments=arguments,
                         runs_on=spec.runs_on, target=target, requester=requester)


def one_line(text: str, limit: int = NOTE_LIMIT) -> str:
    """Outside text as one quoted line: no line breaks or control characters, at most ``limit`` characters."""
    flat = " ".join(_CONTROL.sub(" ", text).split()).replace('"', "'")
    return '"' + (flat if len(flat) <= limit else flat[: limit - 1] + "…") + '"'


def approval_statement(*, verification: str = "", finding: str = "", note: str = "",
                       note_label: str = NOTE_LABEL) -> str:
    """The stored ``reason``: the server's own sentence first, then outside text, labelled and quoted.

    ``note_label`` says whose the note is: the model's (:data:`NOTE_LABEL`, the default) or, for the
    deterministic runner, the playbook's (:data:`PLAYBOOK_LABEL`)."""
    lines = [verification] if verification else []
    if finding:
        lines.append(FINDING_LABEL + one_line(finding))
    if note:
        lines.append(note_label + one_line(note))
    return "\n".join(lines)


def argument_lines(facts: ApprovalFacts) -> list[str]:
    """One line per argument: ``name = value: meaning``."""
    return [f"{a.name} = {json.dumps(a.value)}" + (f": {a.meaning}" if a.meaning else "") for a in facts.arguments]
