"""From a provider's HTTP status to the engine's error tree: one rule for every adapter."""

from __future__ import annotations

from collections.abc import Mapping

from mspclaw.errors import ModelAuthError, ModelError, ModelOverloaded, ModelRateLimited, ModelRejected


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after`` (or ``retry-after-ms``), when the provider sent one."""
    if not headers:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return float(ms) / 1000
        if (seconds := headers.get("retry-after")) is not None:
            return float(seconds)
    except ValueError:
        return None  # an HTTP date: let the backoff decide
    return None


def from_status(provider: str, status: int, message: str, headers: Mapping[str, str] | None = None) -> ModelError:
    text = f"{provider} answered HTTP {status}: {message}"[:500]
    if status == 429:
        return ModelRateLimited(text, status=status, retry_after=retry_after(headers))
    if status >= 500:  # 500, 502, 503, 504, Anthropic's 529 overloaded
        return ModelOverloaded(text, status=status, retry_after=retry_after(headers))
    if status in (401, 403):
        return ModelAuthError(text + " (check the API key in the provider's environment variable)", status=status)
    return ModelRejected(text, status=status)
