"""A command group run bare (``mspclaw devices``) runs its obvious default command (list) instead of
printing its usage; ``mspclaw devices --help`` still shows the group's commands."""

from __future__ import annotations

from collections.abc import Callable

import typer


def runs_bare(group: typer.Typer, default: Callable[[], None]) -> None:
    """Make ``group`` run ``default`` (called with its own defaults) when no command is named."""

    @group.callback(invoke_without_command=True)
    def _bare(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            default()
