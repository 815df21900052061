"""Alembic is the only way the schema changes: head must build exactly portico.models."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, UniqueConstraint, func, insert, inspect, select

from portico import migrate
from portico.clock import utcnow
from portico.models import Base, Client

POSTGRES_URL = os.environ.get("PORTICO_TEST_DATABASE_URL")


@dataclass
class Target:
    url: str
    schema: str | None


@pytest.fixture(params=["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    """An empty database: a new SQLite file, or a fresh schema in PORTICO_TEST_DATABASE_URL."""
    if request.param == "sqlite":
        yield Target(f"sqlite+aiosqlite:///{tmp_path}/not/yet/there/portico.db", None)
        return
    assert POSTGRES_URL
    url = POSTGRES_URL
    schema = f"test_migrations_{uuid.uuid4().hex[:12]}"
    try:
        yield Target(url, schema)
    finally:
        engine = migrate.migration_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await engine.dispose()


def constraint_names(conn: Connection) -> dict[str, set[str]]:
    """Every table's named pk/fk/unique/index, as the database reports them."""
    inspector = inspect(conn)
    names: dict[str, set[str]] = {}
    for table in inspector.get_table_names():
        found = {inspector.get_pk_constraint(table)["name"]} - {None}
        found |= {fk["name"] for fk in inspector.get_foreign_keys(table)}
        found |= {uq["name"] for uq in inspector.get_unique_constraints(table)}
        found |= {
            ix["name"] for ix in inspector.get_indexes(table) if not ix.get("duplicates_constraint")
        }
        names[table] = {str(name) for name in found}
    return names


def model_constraint_names(dialect: str) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for table in Base.metadata.sorted_tables:
        # SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT` is inline, so that pk has no name there.
        inline_pk = dialect == "sqlite" and table.dialect_kwargs.get("sqlite_autoincrement")
        found = set() if inline_pk else {table.primary_key.name}
        found |= {fk.name for fk in table.foreign_key_constraints}
        found |= {c.name for c in table.constraints if isinstance(c, UniqueConstraint)}
        found |= {ix.name for ix in table.indexes}
        names[table.name] = {str(name) for name in found}
    return names


async def inspect_db(target: Target) -> dict[str, Any]:
    """Autogenerate's diff against Base.metadata plus the tables and names actually there."""

    def look(conn: Connection) -> dict[str, Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        if target.schema is not None:  # prove the tables landed in the test's own schema
            assert conn.exec_driver_sql("SELECT current_schema()").scalar() == target.schema
        return {
            "diffs": compare_metadata(context, Base.metadata),
            "names": constraint_names(conn),
            "revision": context.get_current_revision(),
        }

    engine = migrate.migration_engine(target.url, target.schema)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(look)
    finally:
        await engine.dispose()


def test_model_constraint_names_are_unique() -> None:
    """PostgreSQL indexes and pk/unique constraints share one namespace per schema."""
    names = [
        str(c.name)
        for table in Base.metadata.sorted_tables
        for c in [*table.constraints, *table.indexes]
    ]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"naming convention gives several constraints the name {duplicates}"


def test_revisions_form_one_numbered_chain() -> None:
    script = ScriptDirectory(str(migrate.SCRIPT_LOCATION))
    revisions = list(reversed(list(script.walk_revisions())))
    assert revisions[0].revision == "0001_initial"
    assert script.get_heads() == [migrate.head()] == [revisions[-1].revision]
    for number, rev in enumerate(revisions, start=1):
        assert re.fullmatch(r"\d{4}_[a-z0-9_]+", rev.revision), rev.revision
        assert int(rev.revision[:4]) == number
        assert len(rev.revision) <= 32  # alembic_version.version_num is VARCHAR(32)
        assert Path(rev.path).name == f"{rev.revision}.py"
        assert rev.down_revision == (revisions[number - 2].revision if number > 1 else None)
        source = Path(rev.path).read_text()
        assert not re.search(r"^\s*(from|import) portico\b", source, re.M), rev.path


async def test_upgrade_builds_exactly_the_models(target: Target) -> None:
    assert migrate.current(target.url, schema=target.schema) is None

    await migrate.upgrade_async(target.url, schema=target.schema)

    head = migrate.head()
    assert migrate.current(target.url, schema=target.schema) == head
    state = await inspect_db(target)
    assert state["diffs"] == []
    assert state["revision"] == head
    assert state["names"].pop("alembic_version") == {"alembic_version_pkc"}
    dialect = "postgresql" if target.schema else "sqlite"
    assert state["names"] == model_constraint_names(dialect)  # the naming convention's names


async def test_sqlite_autoincrement_tables_never_reuse_ids(tmp_path: Path) -> None:
    """Autogenerate does not compare `sqlite_autoincrement`, so check the DDL itself."""
    url = f"sqlite+aiosqlite:///{tmp_path}/portico.db"
    await migrate.upgrade_async(url)
    engine = migrate.migration_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type='table'"
            )
            ddl = dict(rows.all())
    finally:
        await engine.dispose()
    for table in Base.metadata.sorted_tables:
        expected = bool(table.dialect_kwargs.get("sqlite_autoincrement"))
        assert ("AUTOINCREMENT" in ddl[table.name]) == expected, table.name


async def test_upgrade_twice_is_a_no_op(target: Target) -> None:
    await migrate.upgrade_async(target.url, schema=target.schema)
    engine = migrate.migration_engine(target.url, target.schema)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(Client).values(name="A", email="a@x", created_at=utcnow()))
        # The sync API from inside a running loop (runs on a worker thread).
        migrate.upgrade(target.url, schema=target.schema)
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(Client))).scalar() == 1
    finally:
        await engine.dispose()
    assert migrate.current(target.url, schema=target.schema) == migrate.head()
    assert (await inspect_db(target))["diffs"] == []


async def test_downgrade_to_base_and_back(target: Target) -> None:
    await migrate.upgrade_async(target.url, schema=target.schema)
    migrate.downgrade(target.url, "base", schema=target.schema)
    state = await inspect_db(target)
    assert state["revision"] is None
    assert set(state["names"]) == {"alembic_version"}

    await migrate.upgrade_async(target.url, schema=target.schema)
    assert (await inspect_db(target))["diffs"] == []


def test_sync_upgrade_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    url = "sqlite+aiosqlite:///data/sub/portico.db"  # relative to the working directory
    assert migrate.current(url) is None
    assert not (elsewhere / "data").exists()

    migrate.upgrade(url)

    assert (elsewhere / "data" / "sub" / "portico.db").is_file()
    assert migrate.current(url) == migrate.head()


def test_schema_names_are_checked() -> None:
    with pytest.raises(ValueError, match="schema"):
        migrate.alembic_config("postgresql+asyncpg://localhost/x", schema='x"; DROP TABLE y')
    with pytest.raises(ValueError, match="PostgreSQL"):
        migrate.migration_engine("sqlite+aiosqlite:///x.db", schema="x")
