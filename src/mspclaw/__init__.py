"""MSPclaw: resolves level-1 IT helpdesk tickets for managed service providers."""

__version__ = "0.1.0"
