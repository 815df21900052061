"""Async engine and session factory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from portico.models import Base

SessionMaker = async_sessionmaker


def create_engine(url: str) -> AsyncEngine:
    """An engine for `url`; SQLite files get their folder created and foreign keys on."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Connections are always returned through a Connection or Session, which has already
        # ended its transaction: the pool's own reset rollback would be one more trip to
        # aiosqlite's thread per use (the signing page does six in all).
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None)
        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


def session_maker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_all(engine: AsyncEngine) -> None:
    """Create every table directly (tests); production uses `portico migrate`."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
