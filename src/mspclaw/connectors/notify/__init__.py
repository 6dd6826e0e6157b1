"""Slack and Microsoft Teams notifications: one file each, one small interface.

:class:`~mspclaw.connectors.notify.message.Message` is what MSPclaw wants to say; each channel
renders it in its own format (Slack Block Kit, Teams Adaptive Card) and posts it to a webhook.
"""
