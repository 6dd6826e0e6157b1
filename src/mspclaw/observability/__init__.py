"""What the server tells its operators about itself: measurements, log lines, poller health.

Below every service layer, so the few measurement points (a tool call in ``dispatch``, a PSA
request in ``connectors``, an audit write in ``store``, a poll in ``pipeline``) can record into it;
it imports nothing of MSPclaw's. ``api`` exposes it: ``/metrics``, ``/healthz``, ``/readyz``.
"""
