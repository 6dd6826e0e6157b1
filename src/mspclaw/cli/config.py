"""The settings a command runs with: the environment's (``MSPCLAW_*``), overridden by the global
``--url`` and ``--data-dir`` options that :mod:`mspclaw.cli.app`'s callback records here."""

from __future__ import annotations

from typing import Any

from mspclaw.settings import Settings

_overrides: dict[str, Any] = {}


def use_options(**values: Any) -> None:
    """Record the global options of this invocation (``None``: not given). Each invocation replaces the
    last one's: a CLI run in-process several times (tests, an embedding tool) never inherits an earlier
    ``--data-dir`` or ``--url``."""
    _overrides.clear()
    _overrides.update({k: v for k, v in values.items() if v is not None})


def settings(**extra: Any) -> Settings:
    """The settings for this command; ``extra`` are a command's own options (``None``: not given)."""
    return Settings(**{**_overrides, **{k: v for k, v in extra.items() if v is not None}})
