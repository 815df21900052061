"""The store's connection helpers, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    Numeric,
    Table,
    bindparam,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico import db
from portico.db import (
    DirectRead,
    create_all,
    create_engine,
    execute_alone,
    read_connection,
    session_maker,
)
from portico.models import Approval, Approver, Client, Document, Project
from portico.services.signing_links import LINK_QUERY
from portico.settings import Settings
from tests.conftest import database_backends
from tests.support.helpers import added
from web.app import create_app
from web.http.keys import SESSIONS


async def test_a_read_connection_sees_committed_rows_and_leaves_sessions_transactional(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        session.add(Client(name="Dana Client", email="dana@client.test"))

    async with read_connection(sessions) as conn:
        assert await conn.scalar(select(func.count()).select_from(Client)) == 1
        if conn.dialect.name == "postgresql":  # no BEGIN/ROLLBACK around the read
            raw = await conn.get_raw_connection()
            assert not raw.driver_connection.is_in_transaction()

    # The pooled connection goes back to transactions: a rolled-back write leaves nothing.
    async with sessions() as session:
        if session.bind.dialect.name == "postgresql":
            level = (await session.execute(text("SHOW transaction_isolation"))).scalar()
            assert level == "read committed"
        session.add(Client(name="Never saved", email="never@client.test"))
        await session.flush()
        await session.rollback()
    async with read_connection(sessions) as conn:
        assert await conn.scalar(select(func.count()).select_from(Client)) == 1


async def test_a_statement_run_alone_is_committed_and_leaves_sessions_transactional(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        session.add(Client(name="Dana Client", email="dana@client.test"))

    rename = update(Client).where(Client.email == bindparam("who")).values(name="Dana C.")
    await execute_alone(sessions, rename, {"who": "dana@client.test"})
    async with sessions() as session:  # committed: another connection sees it
        assert await session.scalar(select(Client.name)) == "Dana C."

    # The pooled connection goes back to transactions: a rolled-back write leaves nothing.
    async with sessions() as session:
        if session.bind.dialect.name == "postgresql":
            level = (await session.execute(text("SHOW transaction_isolation"))).scalar()
            assert level == "read committed"
        session.add(Client(name="Never saved", email="never@client.test"))
        await session.flush()
        await session.rollback()
    async with read_connection(sessions) as conn:
        assert await conn.scalar(select(func.count()).select_from(Client)) == 1


async def test_a_failing_statement_run_alone_changes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        session.add(Client(name="Dana Client", email="dana@client.test"))
    breaking = update(Client).values(name=None)  # NOT NULL
    with pytest.raises(DBAPIError):
        await execute_alone(sessions, breaking, {})
    async with sessions() as session:
        assert await session.scalar(select(Client.name)) == "Dana Client"


async def test_sqlite_skips_the_rollback_trip_only_when_no_transaction_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollbacks: list[int] = []
    original = aiosqlite.Connection.rollback

    async def counted(self: aiosqlite.Connection) -> None:
        rollbacks.append(1)
        await original(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    try:
        await create_all(engine)
        sessions = session_maker(engine)
        rollbacks.clear()
        async with sessions() as session:  # a read: nothing to roll back, no trip
            await session.scalar(select(func.count()).select_from(Client))
        async with read_connection(sessions) as conn:
            await conn.scalar(select(func.count()).select_from(Client))
        assert rollbacks == []
        async with sessions() as session:  # a write left uncommitted is rolled back
            session.add(Client(name="Never saved", email="never@client.test"))
            await session.flush()
        assert rollbacks == [1]
        async with read_connection(sessions) as conn:
            assert await conn.scalar(select(func.count()).select_from(Client)) == 0
    finally:
        await engine.dispose()


# PostgreSQL's pool (CI and `make test` set PORTICO_TEST_DATABASE_URL; SQLite has no server
# to lose a connection to).
POSTGRESQL = [b for b in database_backends() if b == "postgresql"]


def count_pings(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


async def drop_on_server(sessions: async_sessionmaker[AsyncSession], pids: set[int]) -> None:
    """End these backends from another engine, as a restarting server or a firewall would."""
    server = create_engine(sessions.kw["bind"].url.render_as_string(hide_password=False))
    try:
        async with server.connect() as conn:
            for pid in pids:
                terminate = text("SELECT pg_terminate_backend(:pid)")
                assert await conn.scalar(terminate, {"pid": pid})
    finally:
        await server.dispose()


@pytest.mark.parametrize("database_url", POSTGRESQL, indirect=True)
async def test_postgresql_tests_a_pooled_connection_only_after_it_sat_idle(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = count_pings(sessions.kw["bind"], monkeypatch)
    for _ in range(5):  # in steady use: no extra round trip before each read or session
        async with read_connection(sessions) as conn:
            assert await conn.scalar(select(func.count()).select_from(Client)) == 0
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Client)) == 0
    assert pings == []
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pause is "idle" now
    async with read_connection(sessions) as conn:
        await conn.scalar(select(func.count()).select_from(Client))
    assert pings == [1]


@pytest.mark.parametrize("database_url", POSTGRESQL, indirect=True)
async def test_postgresql_replaces_an_idle_connection_the_server_dropped(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server restarted, or a firewall dropped the connection, while it sat in the pool:
    the next request gets a fresh one, not an error."""
    async with read_connection(sessions) as conn:
        dropped = await conn.scalar(text("SELECT pg_backend_pid()"))
    await drop_on_server(sessions, {dropped})
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    for _ in range(2):
        async with sessions() as session, session.begin():
            session.add(Client(name="Dana Client", email="dana@client.test"))
        async with read_connection(sessions) as conn:
            assert await conn.scalar(text("SELECT pg_backend_pid()")) != dropped
    async with read_connection(sessions) as conn:
        assert await conn.scalar(select(func.count()).select_from(Client)) == 2


@pytest.mark.parametrize("database_url", POSTGRESQL, indirect=True)
async def test_postgresql_replaces_the_whole_pool_once_one_connection_was_found_dead(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server restarted: the first idle connection tested is dead, so the pool's other
    connections are replaced too, even one used too recently to be tested."""
    pid = text("SELECT pg_backend_pid()")
    async with read_connection(sessions) as one, read_connection(sessions) as two:
        dropped = {await one.scalar(pid), await two.scalar(pid)}
    await drop_on_server(sessions, dropped)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    async with read_connection(sessions) as conn:
        assert await conn.scalar(pid) not in dropped
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)  # no more tests before use
    async with read_connection(sessions) as one, read_connection(sessions) as two:
        assert {await one.scalar(pid), await two.scalar(pid)}.isdisjoint(dropped)


async def test_a_direct_read_returns_what_sqlalchemy_returns(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The signing page's lookup runs straight on the driver: same values, same types (UTC
    datetimes, JSON lists, booleans, NULLs), same order, on both stores."""
    async with sessions() as session, session.begin():
        client = await added(session, Client(name="Dana", email="dana@client.test", locale="fr"))
        project = await added(session, Project(client_id=client.id, name="Kitchen"))
        document = Document(
            project_id=project.id,
            kind="change_order",
            title="Outlets",
            number="CO-1",
            amount_cents=63500,
            portal_visible=True,
            file_path="documents/x.pdf",
            sha256="0" * 64,
            size_bytes=10,
            line_items=[{"description": "Outlet", "quantity": 4, "unit_price_cents": 12500}],
        )
        await added(session, document)
        approval = Approval(
            document_id=document.id,
            workflow_id="approval-direct-read",
            routing="all",
            expires_at=datetime(2027, 1, 5, 17, 30, tzinfo=UTC),
            channels=["email", "sms"],
            notify_staff=[{"email": "office@example.com"}],
        )
        await added(session, approval)
        for position, name in enumerate(["First", "Second"]):
            session.add(
                Approver(
                    approval_id=approval.id,
                    position=position,
                    name=name,
                    email=f"{name.lower()}@client.test",
                    status="approved" if position == 0 else "pending",
                    token_hash=f"{position:064d}",
                    token_expires_at=datetime(2027, 6, 1, tzinfo=UTC),
                    sms_code=f"{4821 + position}",
                    signed_at=datetime(2026, 12, 1, 9, tzinfo=UTC) if position == 0 else None,
                    consent=position == 0,
                )
            )

    read = DirectRead(LINK_QUERY)
    for token_hash in (f"{1:064d}", f"{0:064d}", "no such hash"):
        direct = await read.all(sessions, {"token_hash": token_hash})
        async with read_connection(sessions) as conn:
            usual = [tuple(r) for r in await conn.execute(LINK_QUERY, {"token_hash": token_hash})]
        assert direct == usual
        assert [[type(v) for v in row] for row in direct] == [
            [type(v) for v in row] for row in usual
        ]
        for row in direct:
            assert all(v.utcoffset() == timedelta(0) for v in row if isinstance(v, datetime))
    assert len(await read.all(sessions, {"token_hash": f"{1:064d}"})) == 2


async def test_a_direct_read_that_fails_raises_sqlalchemys_error_and_returns_its_connection(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A read that fails on the driver (here: a missing table) is run again the usual way, so
    the caller gets SQLAlchemy's `DBAPIError`, as from `conn.execute`. Nothing stays checked
    out. On PostgreSQL the driver's connection is not put back (it may be mid-protocol); on
    SQLite it is (a SELECT leaves no state)."""
    missing = Table("no_such_table", MetaData(), Column("id", Integer))
    engine = sessions.kw["bind"]
    pool = engine.sync_engine.pool
    async with read_connection(sessions), read_connection(sessions):  # two pooled, warm
        pass
    opened: list[int] = []
    event.listen(pool, "connect", lambda *_: opened.append(1))
    with pytest.raises(DBAPIError, match="no_such_table"):
        await DirectRead(select(missing.c.id)).all(sessions, {})
    assert pool.checkedout() == 0
    replaced = [1] if engine.dialect.name == "postgresql" else []
    assert opened == replaced  # the usual path's retry got a fresh connection in its place
    async with read_connection(sessions) as a, read_connection(sessions) as b:
        await a.scalar(select(func.count()).select_from(Client))
        await b.scalar(select(func.count()).select_from(Client))
    assert opened == replaced  # and the pool still holds two


async def test_the_pool_keeps_its_connections_under_a_steady_load(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """More requests at once than SQLAlchemy's default pool of 5: once warm, no connection is
    opened again (its "overflow" ones were closed on every return, so a steady load
    reconnected all the time: a new server process per connection on PostgreSQL)."""
    engine = sessions.kw["bind"]
    opened: list[int] = []
    event.listen(engine.sync_engine.pool, "connect", lambda *_: opened.append(1))

    async def read() -> None:
        async with read_connection(sessions) as conn:
            await conn.scalar(select(func.count()).select_from(Client))
            await asyncio.sleep(0.01)  # all of them hold a connection at once

    await asyncio.gather(*(read() for _ in range(db.POOL_SIZE)))
    assert len(opened) == db.POOL_SIZE
    for _ in range(3):
        await asyncio.gather(*(read() for _ in range(40)))  # more than the pool: they queue
    assert len(opened) == db.POOL_SIZE


async def test_a_direct_read_fills_in_literal_values_and_refuses_what_it_cannot_run(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session, session.begin():
        session.add_all(
            [Client(name="Dana", email="dana@client.test"), Client(name="Eli", email="e@x.test")]
        )
    literal = select(Client.name).where(Client.email == "e@x.test").limit(1)  # no params given
    assert await DirectRead(literal).all(sessions, {}) == [("Eli",)]
    with pytest.raises(ValueError, match="read_connection"):
        DirectRead(select(Document.amount_cents.cast(Numeric(12, 2))))
    in_list = select(Client.name).where(Client.email.in_(bindparam("emails", expanding=True)))
    with pytest.raises(ValueError, match="cannot run"):
        await DirectRead(in_list).all(sessions, {"emails": ["e@x.test"]})


async def test_a_failed_direct_read_keeps_an_in_memory_database() -> None:
    """An in-memory SQLite database lives in its one connection: a read that fails must not
    replace that connection (with a new, empty database)."""
    engine = create_engine("sqlite+aiosqlite://")
    try:
        await create_all(engine)
        sessions = session_maker(engine)
        async with sessions() as session, session.begin():
            session.add(Client(name="Dana", email="dana@client.test"))
        missing = Table("no_such_table", MetaData(), Column("id", Integer))
        with pytest.raises(DBAPIError, match="no_such_table"):
            await DirectRead(select(missing.c.id)).all(sessions, {})
        assert await DirectRead(select(Client.name)).all(sessions, {}) == [("Dana",)]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database_url", POSTGRESQL, indirect=True)
async def test_direct_reads_after_the_server_dropped_every_connection_fail_at_most_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The server restarted while the pool was in steady use (no connection idle long enough
    to be tested). A read that finds its connection dead discards it and is run again the
    usual way; at worst that meets another dead one, and SQLAlchemy replaces the whole pool
    and raises its own error, as its own path does once. After the first burst all is well."""
    pid = text("SELECT pg_backend_pid()")
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(read_connection(sessions)) for _ in range(5)]
        dropped = {await conn.scalar(pid) for conn in conns}
    await drop_on_server(sessions, dropped)
    read = DirectRead(select(func.count()).select_from(Client))

    async def outcome() -> object:
        try:
            return await read.all(sessions, {})
        except DBAPIError:
            return "error"

    first = await asyncio.gather(*(outcome() for _ in range(5)))
    assert first.count("error") <= 1
    assert all(result == [(0,)] for result in first if result != "error")
    for _ in range(2):
        assert await asyncio.gather(*(outcome() for _ in range(5))) == [[(0,)]] * 5


async def test_each_process_keeps_as_many_connections_as_configured(settings: Settings) -> None:
    """PORTICO_DB_POOL_SIZE: the web app's pool (the worker and the CLI read it the same way)."""
    app = create_app(settings.model_copy(update={"db_pool_size": 4}))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert app[SESSIONS].kw["bind"].sync_engine.pool.size() == 4
    finally:
        await client.close()
    with pytest.raises(ValidationError, match="PORTICO_DB_POOL_SIZE"):
        Settings(PORTICO_VAR_DIR=str(settings.var_dir), PORTICO_DB_POOL_SIZE="0")


class _BusyDatabase:
    """A sqlite3 connection's stand-in whose reads find the database locked."""

    def __init__(self, code: int) -> None:
        self.code, self.statements = code, []

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        self.statements.append(sql)
        if sql.startswith("SELECT"):
            err = sqlite3.OperationalError("database is locked")
            err.sqlite_errorcode = self.code
            raise err
        return None


def test_a_sqlite_read_that_would_wait_is_not_run_on_the_event_loop() -> None:
    """SQLite: the read runs on the event loop's thread only while it needs no wait (busy
    timeout 0). A read that finds the database locked is left to the connection's thread (the
    caller's None); the busy timeout is put back either way; other errors are raised."""
    recovering = _BusyDatabase(sqlite3.SQLITE_BUSY | 1 << 8)  # SQLITE_BUSY_RECOVERY
    assert db._sqlite_now(recovering, "SELECT 1", ()) is None
    busy = _BusyDatabase(sqlite3.SQLITE_BUSY)
    assert db._sqlite_now(busy, "SELECT 1", ()) is None
    assert busy.statements == [
        "PRAGMA busy_timeout = 0",
        "SELECT 1",
        f"PRAGMA busy_timeout = {db.SQLITE_BUSY_TIMEOUT_MS}",
    ]
    shared_cache = _BusyDatabase(sqlite3.SQLITE_LOCKED | 1 << 8)  # SQLITE_LOCKED_SHAREDCACHE
    assert db._sqlite_now(shared_cache, "SELECT 1", ()) is None
    broken = _BusyDatabase(sqlite3.SQLITE_ERROR)
    with pytest.raises(sqlite3.OperationalError):
        db._sqlite_now(broken, "SELECT 1", ())
    assert broken.statements[-1] == f"PRAGMA busy_timeout = {db.SQLITE_BUSY_TIMEOUT_MS}"


async def test_a_sqlite_direct_read_the_loop_cannot_run_takes_the_connections_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    try:
        await create_all(engine)
        sessions = session_maker(engine)
        async with sessions() as session, session.begin():
            session.add(Client(name="Dana", email="dana@client.test"))
        read = DirectRead(select(Client.name))
        assert await read.all(sessions, {}) == [("Dana",)]  # on the loop's thread
        async with engine.connect() as conn:  # writers still wait their 30 s for the lock
            assert await conn.scalar(text("PRAGMA busy_timeout")) == db.SQLITE_BUSY_TIMEOUT_MS
        monkeypatch.setattr(db, "_sqlite_now", lambda *_: None)  # "the database is locked"
        assert await read.all(sessions, {}) == [("Dana",)]  # through aiosqlite's thread
    finally:
        await engine.dispose()


async def test_a_cancelled_sqlite_read_in_the_connections_thread_discards_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelling the await does not stop a read already in aiosqlite's thread: that
    connection must not go back to the pool, where the next read on the loop's thread would
    meet it still running (and wait for it there)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    try:
        await create_all(engine)
        sessions = session_maker(engine)
        read = DirectRead(select(func.count()).select_from(Client))
        assert await read.all(sessions, {}) == [(0,)]
        monkeypatch.setattr(db, "_sqlite_now", lambda *_: None)  # "the database is locked"
        real = aiosqlite.Connection.execute_fetchall

        async def slow(self: aiosqlite.Connection, *args: Any) -> Any:
            await asyncio.sleep(5)  # as if waiting in the thread for a lock
            return await real(self, *args)

        monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", slow)
        pool = engine.sync_engine.pool
        opened: list[int] = []
        event.listen(pool, "connect", lambda *_: opened.append(1))
        task = asyncio.create_task(read.all(sessions, {}))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.checkedout() == 0
        monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", real)
        assert await read.all(sessions, {}) == [(0,)]
        assert opened == [1]  # the cancelled read's connection was replaced, not reused
    finally:
        await engine.dispose()
