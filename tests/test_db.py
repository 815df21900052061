"""The store's connection helpers, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.db import create_all, create_engine, execute_alone, read_connection, session_maker
from portico.models import Client


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
