"""Container health check of the MSPclaw server: exit 0 when GET /healthz answers 200 within 4 s."""

import os
import sys
import urllib.request

port = os.environ.get("MSPCLAW_PORT", "8700")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"unhealthy: {exc}", file=sys.stderr)
    sys.exit(1)
