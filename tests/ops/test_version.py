"""``mspclaw --version``, and the agent's version in its hello: optional, bounded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mspclaw import __version__
from mspclaw.errors import MalformedFrame
from mspclaw.protocol.codec import decode_agent_frame
from mspclaw.protocol.frames import PROTOCOL_VERSION, Hello

HELLO = {"kind": "hello", "protocol": PROTOCOL_VERSION, "agent_id": "a1", "client_id": "c1", "role": "device",
         "hostname": "pc-1", "os": "linux"}


def test_mspclaw_version_prints_it_and_exits_0() -> None:
    done = subprocess.run([sys.executable, "-m", "mspclaw", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"mspclaw {__version__}"


def test_a_hello_without_a_version_still_decodes() -> None:
    hello = decode_agent_frame(json.dumps(HELLO))
    assert isinstance(hello, Hello) and hello.agent_version == ""


def test_the_hello_carries_the_agents_version_bounded() -> None:
    hello = decode_agent_frame(json.dumps({**HELLO, "agent_version": "0.2.0"}))
    assert isinstance(hello, Hello) and hello.agent_version == "0.2.0"
    with pytest.raises(MalformedFrame):
        decode_agent_frame(json.dumps({**HELLO, "agent_version": "9" * 51}))
