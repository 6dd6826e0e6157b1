"""Server side of agent connections: the hub of live agents and ``call_tool``."""

from mspclaw.dispatch.hub import AgentIdentity, ClientDispatcher, Hub, Transport, TransportClosed

__all__ = ["AgentIdentity", "ClientDispatcher", "Hub", "Transport", "TransportClosed"]
