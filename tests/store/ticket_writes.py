"""What the tests of the ticket store's multi-row writes share: a ticket store with one client on the test's
engine, a ticket opened in it, and the statements and commits an engine runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

from mspclaw.store.database import Database
from mspclaw.store.registry import Registry
from mspclaw.store.tables import Client, Session
from mspclaw.store.tickets import TicketStore


class Statements:
    """Statements and commits on an engine, through its public event hooks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sql: list[str] = []
        self.commits = 0

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.sql.append(" ".join(statement.split()))

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)


def ticket_store(engine: Engine) -> tuple[Database, TicketStore, Client]:
    """The ticket store on ``engine`` and a client, Acme, to open tickets for."""
    db = Database(engine)
    return db, TicketStore(db), Registry(db).add_client("Acme", {"local": "7"})


def opened(engine: Engine) -> tuple[Database, TicketStore, Session]:
    """:func:`ticket_store` with a ticket opened (``disk full``): its session, started."""
    db, store, client = ticket_store(engine)
    _, session = store.open_ticket(client_id=client.id, subject="disk full", body="", requester="u@x",
                                   device_id=None, started=True)
    return db, store, session
