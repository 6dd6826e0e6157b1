"""Put a technician roster in place on a built server, as an admin's ``mspclaw tech import`` would: the roster
lives in the database, so every server on it sees the change at its next read."""

from __future__ import annotations

from typing import Any

import yaml

from mspclaw.pipeline.techs import TechsFile, parse
from mspclaw.wiring import Services


def put_roster(services: Services, doc: dict[str, Any] | list[dict[str, Any]]) -> None:
    """Replace the roster with ``doc`` (``{"techs": [...], "channels": [...]}``, or a list of technicians),
    validated as a techs.yaml file is."""
    full = {"techs": doc} if isinstance(doc, list) else doc
    services.staff.techs.replace_all(parse(yaml.safe_dump(full), "techs.yaml"))


def roster_of(services: Services) -> TechsFile:
    """The roster as stored, channel URLs opened."""
    return services.staff.techs.load()
