"""SQLite: write transactions of one process take turns in order (portico.sqlite_writes)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from portico import db, sqlite_writes
from portico.db import create_all, create_engine, execute_alone, session_maker
from portico.models import Approval, Approver, AuditEvent, Client, Document, Project
from portico.services.approval_records import ApprovalRecords
from portico.sqlite_writes import WriteTurns
from tests.support.helpers import added
from workflows.types import ApproverRecord, AuditEventInput, SyncApprovalInput


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    yield engine
    await engine.dispose()


async def _rows(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT who FROM t ORDER BY id"))).scalars())


async def test_writers_wait_their_turn_in_order_while_readers_do_not_wait(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_wrote, let_go = asyncio.Event(), asyncio.Event()
    asked: list[str] = []

    asks = WriteTurns.take

    def take(self: WriteTurns, connection: Any, statement: str, parameters: Any) -> None:
        if parameters:  # a writer below, just before it asks for its turn
            asked.append(parameters[0])
        asks(self, connection, statement, parameters)

    monkeypatch.setattr(WriteTurns, "take", take)

    async def first() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('first')"))
            first_wrote.set()
            await let_go.wait()  # holds the write lock (and the turn) meanwhile

    async def writer(name: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES (:who)"), {"who": name})

    holder = asyncio.create_task(first())
    await first_wrote.wait()
    waiting = []
    for name in ("second", "third", "fourth"):
        waiting.append(asyncio.create_task(writer(name)))
        async with asyncio.timeout(5):  # each asks after the one before
            while name not in asked:
                await asyncio.sleep(0.001)
    # They wait for their turn on the event loop, not in SQLite's busy handler: nothing of
    # theirs is written, and a reader is not held up at all.
    assert await asyncio.wait_for(_rows(engine), timeout=1) == []
    assert all(not task.done() for task in waiting)

    let_go.set()
    await asyncio.gather(holder, *waiting)
    assert await _rows(engine) == ["first", "second", "third", "fourth"]


async def test_a_transaction_rolled_back_gives_its_turn_back(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('undone')"))
            raise RuntimeError("the caller gives up")

    async with asyncio.timeout(2):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('next')"))
    assert await _rows(engine) == ["next"]


async def test_a_failed_statement_and_an_autocommit_write_give_the_turn_back(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(OperationalError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO no_such_table (who) VALUES ('x')"))

    sessions = session_maker(engine)
    async with asyncio.timeout(2):
        await execute_alone(sessions, text("INSERT INTO t (who) VALUES (:who)"), {"who": "alone"})
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('after')"))
    assert await _rows(engine) == ["alone", "after"]


async def test_a_failed_commit_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A COMMIT that fails (here a deferred foreign key) leaves sqlite3's transaction open;
    the pool rolls it back when the connection comes back, so the next writers get in."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'commit.db'}", pool_size=2)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE p (id INTEGER PRIMARY KEY)"))
            await conn.execute(
                text(
                    "CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT, "
                    "p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)"
                )
            )
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (who, p) VALUES ('orphan', 999)"))

        async def writer(name: str) -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (who) VALUES (:who)"), {"who": name})

        async with asyncio.timeout(5):
            await asyncio.gather(writer("a"), writer("b"))
        assert await _rows(engine) == ["a", "b"]
    finally:
        await engine.dispose()


async def test_a_turn_given_back_by_the_garbage_collector_in_another_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection left unreturned (here in a reference cycle) is given back by the garbage
    collector, in whatever thread it runs: its turn is still handed on at once, on the loop.
    (The loop in debug mode checks that nothing touches it from another thread.)"""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 10_000)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}")
    loop = asyncio.get_running_loop()
    debug = loop.get_debug()
    loop.set_debug(True)
    gc.disable()
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))

        class Cycle:
            pass

        leaked = Cycle()
        leaked.self = leaked  # type: ignore[attr-defined]
        leaked.conn = await engine.connect()  # type: ignore[attr-defined]
        await leaked.conn.execute(text("INSERT INTO t (who) VALUES ('leaked')"))  # type: ignore[attr-defined]
        del leaked

        async def waiter() -> float:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (who) VALUES ('next')"))
            return loop.time() - started

        started = loop.time()
        waiting = asyncio.create_task(waiter())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        with warnings.catch_warnings():  # SQLAlchemy warns of the unreturned connection
            warnings.simplefilter("ignore")
            collector = threading.Thread(target=gc.collect)
            collector.start()
            collector.join()
        assert await asyncio.wait_for(waiting, timeout=9) < 3
        assert await _rows(engine) == ["next"]
    finally:
        gc.enable()
        loop.set_debug(debug)
        await engine.dispose()


async def test_a_cancelled_waiter_and_a_cancelled_holder_leave_no_turn_behind(
    engine: AsyncEngine,
) -> None:
    holding, forever = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('cancelled')"))
            holding.set()
            await forever.wait()

    async def waiter() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('gave up')"))

    held = asyncio.create_task(holder())
    await holding.wait()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.05)
    waiting.cancel()
    held.cancel()
    for task in (waiting, held):
        with pytest.raises(asyncio.CancelledError):
            await task

    async with asyncio.timeout(2):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (who) VALUES ('next')"))
    assert await _rows(engine) == ["next"]


async def test_a_writer_that_never_gets_its_turn_fails_as_a_locked_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)  # the turn waits as long as SQLite
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'short.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
        release = asyncio.Event()
        holding = asyncio.Event()

        async def holder() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (who) VALUES ('holder')"))
                holding.set()
                await release.wait()

        held = asyncio.create_task(holder())
        await holding.wait()
        started = asyncio.get_running_loop().time()
        with pytest.raises(OperationalError, match="database is locked"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (who) VALUES ('late')"))
        assert asyncio.get_running_loop().time() - started < 5
        release.set()
        await held
        assert await _rows(engine) == ["holder"]
    finally:
        await engine.dispose()


async def test_a_snapshot_is_read_whole_before_its_first_write(tmp_path: Path) -> None:
    """ApprovalRecords.apply reads everything before it writes: on SQLite the write lock is
    then held for the writes and the COMMIT only."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'apply.db'}")
    sessions: async_sessionmaker[AsyncSession] = session_maker(engine)
    try:
        await create_all(engine)
        now = datetime.now(UTC)
        async with sessions() as session, session.begin():
            client = await added(session, Client(name="Dana", email="dana@client.test"))
            project = await added(session, Project(client_id=client.id, name="Kitchen"))
            document = await added(
                session,
                Document(
                    project_id=project.id,
                    kind="estimate",
                    title="Cabinets",
                    number="E-1",
                    file_path="documents/e.pdf",
                    sha256="0" * 64,
                    size_bytes=10,
                ),
            )
            approval = await added(
                session,
                Approval(
                    document_id=document.id,
                    workflow_id="approval-1",
                    routing="any",
                    channels=["email"],
                    notify_staff=[],
                ),
            )
            approver = await added(
                session,
                Approver(
                    approval_id=approval.id,
                    position=0,
                    name="Dana",
                    status="pending",
                    token_hash="0" * 64,
                    token_expires_at=now + timedelta(days=30),
                    sms_code="4821",
                ),
            )
            approval_id, approver_id = approval.id, approver.id

        statements: list[str] = []

        @event.listens_for(engine.sync_engine, "before_cursor_execute", insert=True)
        def _seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            statements.append(statement.split()[0].upper())

        snapshot = SyncApprovalInput(
            approval_id=approval_id,
            status="pending",
            expires_at=now + timedelta(days=3),
            approvers=[ApproverRecord(id=approver_id, status="pending", notified_at=now)],
            event=AuditEventInput(
                event_key="approval-1:2", at=now, type="sent", actor="system", data={}
            ),
        )
        assert await ApprovalRecords(sessions).apply(snapshot)

        first_write = next(i for i, s in enumerate(statements) if s in ("INSERT", "UPDATE"))
        assert "SELECT" not in statements[first_write:], statements
        async with sessions() as session:
            assert await session.scalar(select(func.count(AuditEvent.id))) == 1
            assert (await session.get(Approver, approver_id)).notified_at is not None  # type: ignore[union-attr]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("statement", "opens_a_transaction"),
    [
        ("INSERT INTO t VALUES (1)", True),
        ("  update t SET who = 'x'", True),
        ("/* why */ DELETE FROM t", True),
        ("-- why\nREPLACE INTO t VALUES (1)", True),
        ("SELECT * FROM t", False),
        ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", False),  # sqlite3 opens none
        ("PRAGMA user_version", False),
    ],
)
def test_writes_are_read_as_sqlite3_reads_them(statement: str, opens_a_transaction: bool) -> None:
    """The turn is taken exactly where sqlite3 opens a transaction by itself."""
    assert sqlite_writes._is_write(statement) is opens_a_transaction
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (who TEXT)")
    connection.execute(statement)
    assert connection.in_transaction is opens_a_transaction
    connection.close()
