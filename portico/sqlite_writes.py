"""SQLite: a process's write transactions take turns, first come first served.

SQLite lets one connection write at a time. The others wait in its busy handler, which sleeps
between tries: 1 ms at first, then up to 100 ms. Under load, a writer that has waited a while
tries only every 100 ms and keeps losing the lock to newer writers that try sooner. Creations
at 8 at a time waited up to 2.5 s that way (docs/benchmarks.md, ninth pass).

So a connection about to write first takes its process's turn lock (an asyncio lock:
waiters get it in order, with no sleeping). It holds the lock until its transaction ends. A
write starts with an INSERT, UPDATE, DELETE or REPLACE, which is where the driver opens the
transaction. Each process writes one transaction at a time, so between processes (web and
worker) the busy handler sees at most one writer from each.

A writer that cannot get its turn within the busy timeout fails as a busy SQLite does
("database is locked"); once it has its turn it may still wait up to the busy timeout in
SQLite's handler for another process's writer. The lock is per engine and event loop (the dev
server's web and worker have an engine each). In-memory databases live in one shared
connection and need none of this. Writes that begin a transaction some other way (an explicit
BEGIN, a SAVEPOINT first) take no turn and wait in the busy handler as before; Portico issues
none.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_
from sqlalchemy.util.concurrency import in_greenlet

# Statements that make the driver (sqlite3, legacy transaction control) open a transaction:
# INSERT, UPDATE, DELETE or REPLACE after any blanks and comments, as sqlite3 itself reads them.
_WRITE = re.compile(
    r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*(?:INSERT|UPDATE|DELETE|REPLACE)\b",
    re.IGNORECASE | re.DOTALL,
)


def _adapted(connection: Any) -> Any:
    """aiosqlite's adapter (what the dialect and the pool see) under SQLAlchemy's proxy."""
    return getattr(connection, "dbapi_connection", connection)


def raw_sqlite(connection: Any) -> sqlite3.Connection | None:
    """The sqlite3 connection under aiosqlite's adapter (or a pool proxy of it), if it is open."""
    try:
        raw = _adapted(connection)._connection._conn
    except (AttributeError, ValueError):  # closed, or not aiosqlite
        return None
    return raw if isinstance(raw, sqlite3.Connection) else None


def _in_transaction(raw: sqlite3.Connection) -> bool:
    try:
        return raw.in_transaction
    except sqlite3.ProgrammingError:  # closed: its transaction is over
        return False


def _is_write(statement: str) -> bool:
    return _WRITE.match(statement) is not None


class WriteTurns:
    """The turn lock of one engine, and which connection holds it."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        # id(aiosqlite adapter) -> its sqlite3 connection, the lock it holds and that lock's loop
        self._held: dict[
            int, tuple[sqlite3.Connection, asyncio.Lock, asyncio.AbstractEventLoop]
        ] = {}

    def take(self, connection: Any, statement: str, parameters: Any) -> None:
        """Before a statement: a write outside a transaction waits for this process's turn."""
        adapted = _adapted(connection)
        if id(adapted) in self._held or not _is_write(statement):
            return
        raw = raw_sqlite(adapted)
        if raw is None or raw.in_transaction:
            return
        if not in_greenlet():  # a synchronous caller (no event loop to wait on)
            return
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        try:
            await_(self._acquire(lock))
        except TimeoutError:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode, busy.sqlite_errorname = sqlite3.SQLITE_BUSY, "SQLITE_BUSY"
            raise OperationalError(statement, parameters, busy) from None
        self._held[id(adapted)] = (raw, lock, loop)

    async def _acquire(self, lock: asyncio.Lock) -> None:
        async with asyncio.timeout(self.timeout_s):
            await lock.acquire()

    def give_back(self, connection: Any, *, always: bool = False) -> None:
        """Once its transaction has ended (or the connection leaves use: `always`)."""
        key = id(_adapted(connection))
        held = self._held.get(key)
        if held is None:
            return
        raw, lock, loop = held
        if always or not _in_transaction(raw):
            del self._held[key]
            _release(lock, loop)


def _release(lock: asyncio.Lock, loop: asyncio.AbstractEventLoop) -> None:
    """Release on the lock's own loop: a connection left unreturned is given back by the garbage
    collector, which may run in any thread (asyncio's lock is not thread-safe)."""
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        lock.release()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(lock.release)


def take_turns(engine: AsyncEngine, timeout_s: float) -> WriteTurns:
    """Install the turn lock on a SQLite file engine (see the module's docstring)."""
    turns = WriteTurns(timeout_s)
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        turns.take(conn.connection, statement, parameters)

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        turns.give_back(conn.connection)  # a statement in autocommit, say

    @event.listens_for(sync_engine, "handle_error")
    def _failed(context):  # type: ignore[no-untyped-def]
        if context.connection is not None and not context.connection.invalidated:
            turns.give_back(context.connection.connection)

    for name in ("checkin", "invalidate", "soft_invalidate", "close", "detach"):
        event.listen(
            sync_engine.pool,
            name,
            lambda dbapi_connection, *_: turns.give_back(dbapi_connection, always=True),
        )

    for name in ("do_commit", "do_rollback"):
        setattr(dialect, name, _then_give_back(getattr(dialect, name), turns))
    return turns


def _then_give_back(end: Any, turns: WriteTurns) -> Any:
    def ended(dbapi_connection: Any) -> None:
        try:
            end(dbapi_connection)
        finally:
            turns.give_back(dbapi_connection)

    return ended
