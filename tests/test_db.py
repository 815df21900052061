"""The store's connection helpers, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico import db
from portico.db import create_all, create_engine, execute_alone, read_connection, session_maker
from portico.models import Client
from tests.conftest import database_backends


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
