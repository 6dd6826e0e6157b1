"""A small REST client for the CLI: the API key, the server URL and readable errors."""

from __future__ import annotations

from typing import Any

import httpx

from mspclaw.cli.config import settings
from mspclaw.cli.exits import ExitCode
from mspclaw.errors import ConfigError, MSPClawError
from mspclaw.settings import Settings


class CLIError(MSPClawError):
    """Printed as ``error: ...``; the command exits with :attr:`exit_code`."""

    code = "cli"
    exit_code: ExitCode = ExitCode.ERROR


class WaitTimedOut(CLIError):
    """``--wait`` ran out of time before the work ended (it goes on on the server)."""

    code = "cli_timeout"
    exit_code = ExitCode.TIMEOUT


class ApiClient:
    def __init__(self, settings: Settings, *, timeout: float = 30.0) -> None:
        self.url = settings.server_url.rstrip("/")
        try:
            key = settings.load_api_key(create=False)
        except ConfigError as exc:
            raise CLIError(exc.message) from exc
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {key}"})

    def __del__(self) -> None:
        # close the connection pool when a command is done with its client (matters when the CLI runs in-process)
        http = getattr(self, "_http", None)
        if http is not None:
            http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CLIError(f"cannot reach the server at {self.url} ({exc}); is `mspclaw server` running? "
                           "Point the CLI elsewhere with MSPCLAW_SERVER_URL or --url.") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
                message = detail.get("message") if isinstance(detail, dict) else str(detail)
            except ValueError:
                message = response.text[:300]
            raise CLIError(f"{response.status_code}: {message}")
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body or {})


def api() -> ApiClient:
    """A client of the server the global options and the environment name, with their API key."""
    return ApiClient(settings())
