"""What ``mspclaw psa add KIND`` stores for each PSA: :mod:`mspclaw.pipeline.psa_account_fields`, with its
errors told in the CLI's words (the options to pass).

Each kind's main secret comes from its option, else ``MSPCLAW_PSA_TOKEN``, else a hidden prompt.
"""

from __future__ import annotations

from typing import Any

from mspclaw.cli.client import CLIError
from mspclaw.pipeline import psa_account_fields
from mspclaw.pipeline.psa_account_fields import KINDS, AccountFieldsError, PSAOptions, Secret

__all__ = ["KINDS", "PSAOptions", "Secret", "account_fields"]


def account_fields(kind: str, o: PSAOptions, secret: Secret) -> tuple[dict[str, Any], dict[str, str]]:
    """``(config, secrets)`` of a new account of ``kind``; :class:`CLIError` naming the options missing."""
    try:
        return psa_account_fields.account_fields(kind, o, secret)
    except AccountFieldsError as exc:
        if exc.missing:
            options = ", ".join("--" + name.replace("_", "-") for name in exc.missing)
            raise CLIError(f"{kind} needs {options} (see docs/psa/{kind}.md)") from exc
        raise CLIError(exc.message.replace("region ", "--region ").replace("webhook_auth", "--webhook-auth")) from exc
