"""The caller's client scope applied to a client named in a request."""

from __future__ import annotations

from mspclaw.api.auth import Caller
from mspclaw.errors import NotFound
from mspclaw.store.tables import Client
from mspclaw.wiring import Services


def client_in_scope(svc: Services, caller: Caller, ref: str) -> Client:
    """The client ``ref`` (id or exact name); one outside the caller's scope is not found either."""
    client = svc.registry.client(ref)
    if caller.scope is not None and client.id not in caller.scope:
        raise NotFound(f"no client {ref!r}")
    return client
