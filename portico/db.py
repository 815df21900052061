"""Async engine and session factory."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, event, make_url
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.expression import Executable

from portico.models import Base
from portico.sqlite_writes import raw_sqlite, take_turns

if TYPE_CHECKING:
    from portico.settings import Settings

SessionMaker = async_sessionmaker
# A pooled PostgreSQL connection idle this long is tested before it is used again.
PING_AFTER_IDLE_SECONDS = 10.0
_IDLE_SINCE = "portico_idle_since"
# Connections a process keeps (PORTICO_DB_POOL_SIZE): all of them stay open once made.
# SQLAlchemy's default (5, plus 10 "overflow" ones closed again as soon as they are returned)
# reconnects all the time under a steady load of more than 5 requests at once: on PostgreSQL a
# new server process per connection, which halved the signing page's throughput
# (docs/benchmarks.md). Same cap, 15.
POOL_SIZE = 15
SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for the lock


def engine_for(settings: Settings) -> AsyncEngine:
    """The engine a process uses: PORTICO_DATABASE_URL, PORTICO_DB_POOL_SIZE connections."""
    return create_engine(settings.database_url, settings.db_pool_size)


def create_engine(url: str, pool_size: int = POOL_SIZE) -> AsyncEngine:
    """An engine for `url` keeping up to `pool_size` connections; SQLite files get their folder
    created and foreign keys on."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A file's pool rolls back a connection returned with its transaction still open (after
        # a COMMIT that failed: SQLite would keep its write lock); `_rollback_if_open` makes
        # that check free otherwise (no trip to aiosqlite's thread). A database living in one
        # shared connection (in-memory) is never reset: another session may be using it.
        # check_same_thread=False (SQLAlchemy's default for files, said here because DirectRead
        # relies on it): the signing page's SELECT runs on the event loop's thread while the
        # connection is checked out and its aiosqlite thread has nothing to do.
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        engine = _pooled(
            url,
            pool_size,
            connect_args=connect_args,
            pool_reset_on_return=None,
            pooled={"pool_reset_on_return": "rollback"},
        )
        engine.dialect.do_rollback = functools.partial(  # type: ignore[method-assign]
            _rollback_if_open, engine.dialect.do_rollback
        )
        if isinstance(engine.sync_engine.pool, QueuePool):  # a file: several connections
            take_turns(engine, SQLITE_BUSY_TIMEOUT_MS / 1000)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    engine = _pooled(url, pool_size)
    _ping_after_idle(engine)
    return engine


def _pooled(
    url: str, pool_size: int, pooled: dict[str, Any] | None = None, **options: Any
) -> AsyncEngine:
    """An engine whose pool keeps up to `pool_size` connections open and hands out the one used
    last (so a light load keeps using a few, and the rest idle until a burst needs them).
    A database that lives in its one connection (in-memory SQLite) keeps its own pool;
    `pooled` options apply only to the other kind."""
    engine = create_async_engine(url, **options)
    if not isinstance(engine.sync_engine.pool, QueuePool):
        return engine
    options.update(pooled or {})
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=0, pool_use_lifo=True, **options
    )


def _ping_after_idle(engine: AsyncEngine) -> None:
    """Test a pooled connection before use only if it sat idle PING_AFTER_IDLE_SECONDS.

    What goes stale in a pool is an idle connection (the server restarted in a quiet hour, a
    firewall or pooler dropped it); such a one is replaced before anyone uses it. SQLAlchemy's
    `pool_pre_ping` tests every checkout instead: one more round trip per use, which doubled
    the cost of the signing page's one read (docs/benchmarks.md). A connection that breaks
    while in steady use fails its statement, as it would under pre-ping too if it broke
    mid-request. Either way a dead connection found means the server probably restarted, so
    the whole pool is replaced (as `pool_pre_ping` does)."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _idle_from(dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        cause: Exception | None = None
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as err:
            alive, cause = False, err
        if not alive:  # this checkout reconnects, and so will every older pooled connection
            raise InvalidatePoolError("a pooled connection had gone stale") from cause


def _rollback_if_open(rollback: Callable[[Any], None], dbapi_connection: Any) -> None:
    """SQLite: roll back only when the connection has a transaction open.

    A read-only session or connection ends with a rollback, and through aiosqlite that is one
    more trip to the connection's thread (1 of the 5 of a signing-page lookup,
    docs/benchmarks.md), although sqlite3's own rollback does nothing when no transaction is
    open (a SELECT opens none). `in_transaction` is that same test, read without the trip;
    nothing runs on the connection meanwhile (SQLAlchemy uses one connection at a time)."""
    raw = raw_sqlite(dbapi_connection)  # None: another driver, or closed: the usual rollback
    if raw is not None and not raw.in_transaction:
        return
    rollback(dbapi_connection)


def session_maker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.asynccontextmanager
async def read_connection(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncConnection]:
    """A connection for a single read that needs no transaction (one SELECT sees one snapshot).

    On PostgreSQL it runs in autocommit: no BEGIN and ROLLBACK round trips around the query
    (the signing page's lookup, docs/benchmarks.md). SQLite's driver opens no transaction for
    a SELECT anyway, and switching its mode would cost two trips to aiosqlite's thread.
    """
    engine: AsyncEngine = sessions.kw["bind"]
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


class DirectRead:
    """One Core SELECT run straight on the pooled driver connection: for the busiest read.

    The signing page's lookup is one prepared SELECT, yet through SQLAlchemy's asyncio layer
    (execution context, a greenlet switch per driver call, Result objects; on SQLite four
    trips to aiosqlite's thread) it cost 0.34 ms of CPU on PostgreSQL and 0.61 ms on SQLite,
    against 0.18 ms on asyncpg and 0.14 ms on SQLite run this way (docs/benchmarks.md). The
    SQL is what SQLAlchemy compiles for the engine's dialect, and parameters and values go
    through the same type processors, so rows hold exactly what `conn.execute(statement)`
    returns: tuples in the order of `statement.selected_columns`. On asyncpg it is one
    `fetch`; on SQLite the read runs on the event loop's thread unless it would have to wait
    (`_sqlite_now`), else in the connection's thread. Other drivers take the usual path.

    A read that fails on the driver is run again the usual way, so errors are what
    `conn.execute` raises (`DBAPIError`) and SQLAlchemy handles a dead connection as it always
    does: it replaces the whole pool (the server restarted). Statements it cannot run this way
    (IN lists expanded at execution, columns whose conversion needs the driver's type code)
    are refused.
    """

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        for column in statement.selected_columns:
            if isinstance(column.type, sqltypes.Numeric):  # Float too
                raise ValueError(f"DirectRead: {column} is {column.type}; use read_connection")
        self.statement = statement
        self._compiled: dict[str, _CompiledRead] = {}  # per dialect name

    async def all(
        self, sessions: async_sessionmaker[AsyncSession], params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        engine: AsyncEngine = sessions.kw["bind"]
        dialect = engine.dialect
        if dialect.driver in ("asyncpg", "aiosqlite"):
            compiled = self._compiled.get(dialect.name)
            if compiled is None:
                compiled = self._compiled[dialect.name] = _CompiledRead(self.statement, dialect)
            raw = await compiled.fetch(engine, params)
            if raw is not None:
                return [compiled.row(values) for values in raw]
        async with read_connection(sessions) as conn:
            return [tuple(row) for row in await conn.execute(self.statement, params)]


class _CompiledRead:
    """A SELECT compiled for one dialect, with its parameters' and columns' type processors."""

    def __init__(self, statement: Select[*tuple[Any, ...]], dialect: Dialect) -> None:
        self.compiled = compiled = statement.compile(dialect=dialect)
        names = compiled.positiontup
        if names is None or compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError(f"DirectRead cannot run {statement} on {dialect.name}")
        self.sql = compiled.string
        self.names = list(names)
        self.bind_processors = {
            name: compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        }
        self.processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]

    def arguments(self, params: dict[str, Any]) -> tuple[Any, ...]:
        values = self.compiled.construct_params(params)  # literals and defaults included
        out = []
        for name in self.names:
            process = self.bind_processors[name]
            out.append(process(values[name]) if process else values[name])
        return tuple(out)

    def row(self, values: Any) -> tuple[Any, ...]:
        return tuple(
            process(value) if process else value
            for process, value in zip(self.processors, values, strict=True)
        )

    async def fetch(self, engine: AsyncEngine, params: dict[str, Any]) -> list[Any] | None:
        """The driver's rows, or None if the driver failed (the caller runs the usual path)."""
        args = self.arguments(params)
        asyncpg = engine.dialect.driver == "asyncpg"
        shared = not isinstance(engine.sync_engine.pool, QueuePool)  # in-memory SQLite
        async with engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            try:
                if asyncpg:  # no transaction: one round trip
                    return list(await driver.fetch(self.sql, *args))
                rows = None if shared else _sqlite_now(driver._conn, self.sql, args)
                if rows is not None:
                    return rows
                return list(await driver.execute_fetchall(self.sql, args))  # the thread
            except BaseException as err:
                # asyncpg's connection may be mid-protocol (cancelled) or dead; SQLite's thread
                # may still be running a cancelled read, which must not meet the next reader
                # on the loop's thread (SQLAlchemy's own path discards it too). Not a
                # database that lives in its one connection (in-memory SQLite).
                if asyncpg or not (isinstance(err, Exception) or shared):
                    await conn.invalidate()
                if not isinstance(err, Exception):
                    raise
        return None


def _sqlite_now(connection: Any, sql: str, args: tuple[Any, ...]) -> list[Any] | None:
    """The SELECT run right here, on the event loop's thread, or None if it would have to wait.

    A trip to aiosqlite's thread costs the event loop far more than the read: an indexed
    lookup takes ~20 µs in sqlite3, a hand-over of the thread and the GIL and back several
    hundred under load (docs/benchmarks.md, eighth pass). In WAL mode a reader does not wait
    for writers. Where it would have to wait for a lock (another connection recovering the
    WAL, say) it is told at once (busy timeout 0) and the caller takes the thread instead, so
    the loop never sleeps in SQLite's busy handler. (SQLite's own short retries while it
    takes a WAL read lock are not the busy handler: they could hold the loop for seconds only
    if another process kept those locks that long.) The connection is checked out and its
    thread idle (a cancelled read in it discards the connection): nobody else uses it."""
    connection.execute("PRAGMA busy_timeout = 0")
    try:
        return connection.execute(sql, args).fetchall()
    except sqlite3.OperationalError as err:
        # Extended codes too (SQLITE_BUSY_RECOVERY, ..._SNAPSHOT): their low byte is the code.
        if err.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise
        return None
    finally:
        connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


async def execute_alone(
    sessions: async_sessionmaker[AsyncSession], statement: Executable, params: dict[str, Any]
) -> None:
    """Run one UPDATE/INSERT/DELETE as a transaction of its own, through Core (no ORM session).

    One statement is atomic by itself, so on PostgreSQL it runs in autocommit: one round trip
    instead of BEGIN, the statement and COMMIT (the signing page counts a view this way,
    docs/benchmarks.md). On SQLite the driver opens the transaction implicitly and it is
    committed here.
    """
    engine: AsyncEngine = sessions.kw["bind"]
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(statement, params)
        return
    async with engine.begin() as conn:
        await conn.execute(statement, params)


async def create_all(engine: AsyncEngine) -> None:
    """Create every table directly (tests); production uses `portico migrate`."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
