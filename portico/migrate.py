"""Schema migrations: Alembic, configured in code so `portico migrate` works from any directory.

No alembic.ini is needed at run time: the script location is the installed `migrations`
package and the database URL is passed in. The repo-root alembic.ini exists only for developers
running `alembic revision --autogenerate -m "..."`.

    from portico.migrate import upgrade
    upgrade(settings.database_url)              # sync: CLI, scripts, threads
    await upgrade_async(settings.database_url)  # from async code (runs in a worker thread)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

import migrations
from portico.db import create_engine
from portico.settings import load_settings

T = TypeVar("T")

SCRIPT_LOCATION = Path(migrations.__file__).resolve().parent
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def alembic_config(database_url: str, schema: str | None = None) -> Config:
    """An Alembic Config for `database_url`; `schema` (PostgreSQL) isolates it in that schema."""
    config = Config()
    # ConfigParser interpolates "%", so escape it (URL-encoded passwords contain "%").
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "%%(rev)s")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["schema"] = check_schema(schema)
    return config


def check_schema(schema: str | None) -> str | None:
    """`schema` unchanged if it is a plain lower-case identifier (no quoting needed anywhere)."""
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema must match {_SCHEMA_NAME.pattern}: {schema!r}")
    return schema


def migration_engine(database_url: str, schema: str | None = None) -> AsyncEngine:
    """The engine migrations run on: portico.db's, or one whose search_path is only `schema`."""
    if check_schema(schema) is None:
        return create_engine(database_url)
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("a migration schema is only supported on PostgreSQL")
    connect_args: dict[str, Any]
    if url.get_driver_name() == "asyncpg":
        connect_args = {"server_settings": {"search_path": schema}}
    else:
        connect_args = {"options": f"-csearch_path={schema}"}
    return create_async_engine(url, connect_args=connect_args, poolclass=NullPool)


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from sync code.

    With no loop running in this thread it gets a private loop (this thread's current loop is
    left untouched); inside a running loop it runs on a private loop in a worker thread, which
    blocks the caller's loop meanwhile (async callers should prefer `upgrade_async`).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            return runner.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future: concurrent.futures.Future[T] = pool.submit(run_coroutine, coro)
        return future.result()


def upgrade(database_url: str, revision: str = "head", *, schema: str | None = None) -> None:
    """Migrate the database at `database_url` up to `revision` (a no-op when already there)."""
    command.upgrade(alembic_config(database_url, schema), revision)


async def upgrade_async(
    database_url: str, revision: str = "head", *, schema: str | None = None
) -> None:
    """`upgrade` from async code, in a worker thread so the caller's loop keeps running."""
    await asyncio.to_thread(upgrade, database_url, revision, schema=schema)


def downgrade(database_url: str, revision: str, *, schema: str | None = None) -> None:
    """Migrate the database down to `revision` ("base" drops every table)."""
    command.downgrade(alembic_config(database_url, schema), revision)


def current(database_url: str, *, schema: str | None = None) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    url = make_url(database_url)
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not Path(path).exists():
        return None  # don't create an empty database file just to look at it

    async def read() -> str | None:
        engine = migration_engine(database_url, schema)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
                )
        finally:
            await engine.dispose()

    return run_coroutine(read())


def head() -> str:
    """The newest revision in `migrations/versions` (there must be exactly one head)."""
    revision = ScriptDirectory(str(SCRIPT_LOCATION)).get_current_head()
    if revision is None:
        raise RuntimeError("no migration revisions found")
    return revision


def main(argv: list[str] | None = None) -> None:
    """`python -m portico.migrate [REVISION]`: upgrade PORTICO_DATABASE_URL (default head)."""
    args = sys.argv[1:] if argv is None else argv
    database_url = load_settings().database_url
    upgrade(database_url, args[0] if args else "head")
    print(f"database at revision {current(database_url)}")


if __name__ == "__main__":
    main()
