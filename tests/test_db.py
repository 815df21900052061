"""The store's connection helpers, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.db import read_connection
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
