"""Read queries of the staff console's pages (the board, pickers, client lists). Everything
the console changes goes through the same services as the staff API (`Portico`, `Billing`,
`PortalStore`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portico.errors import NotFound
from portico.models import Approval, Client, Document, Project

BOARD_LIMIT = 200  # rows on the board; the search narrows it down
WATCH_LIMIT = 500  # approvals one live stream may watch
APPROVAL_STATUSES = ("pending", "partially_approved", "approved", "declined", "expired", "void")


@dataclass(frozen=True)
class BoardRow:
    id: int
    status: str
    number: str
    title: str
    kind: str
    client: str
    client_id: int


@dataclass(frozen=True)
class ProjectChoice:
    id: int
    name: str
    client: str


def client_label(client: Client) -> str:
    return f"{client.name} ({client.company})" if client.company else client.name


def like_pattern(text: str) -> str:
    """`text` as a case-insensitive LIKE pattern matching it anywhere, wildcards escaped."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConsoleQueries:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def board(self, status: str | None = None, search: str | None = None) -> list[BoardRow]:
        """Requests, newest first, filtered by status and by a search of the document number,
        title and client name (or company)."""
        query = (
            select(Approval, Document, Client)
            .join(Document, Document.id == Approval.document_id)
            .join(Project, Project.id == Document.project_id)
            .join(Client, Client.id == Project.client_id)
            .order_by(Approval.id.desc())
            .limit(BOARD_LIMIT)
        )
        if status:
            query = query.where(Approval.status == status)
        if search:
            pattern = like_pattern(search.strip())
            query = query.where(
                or_(
                    *(
                        func.lower(column).like(pattern, escape="\\")
                        for column in (Document.number, Document.title, Client.name, Client.company)
                    )
                )
            )
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            BoardRow(a.id, a.status, d.number, d.title, d.kind, client_label(c), c.id)
            for a, d, c in rows
        ]

    async def statuses(self, approval_ids: Iterable[int]) -> dict[int, str]:
        """The current status of each of these approvals (what a live board polls)."""
        ids = list(approval_ids)[:WATCH_LIMIT]
        if not ids:
            return {}
        async with self.sessions() as session:
            rows = await session.execute(
                select(Approval.id, Approval.status).where(Approval.id.in_(ids))
            )
            return {row.id: row.status for row in rows}

    async def project_choices(self) -> list[ProjectChoice]:
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Project, Client)
                    .join(Client, Client.id == Project.client_id)
                    .where(Project.status == "active")
                    .order_by(Client.name, Project.name)
                )
            ).all()
        return [ProjectChoice(p.id, p.name, client_label(c)) for p, c in rows]

    async def clients(self) -> list[Client]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Client).order_by(Client.name, Client.id)))

    async def client(self, client_id: int) -> tuple[Client, list[Project]]:
        async with self.sessions() as session:
            client = await session.get(Client, client_id)
            if client is None:
                raise NotFound(f"Client {client_id} does not exist.")
            projects = list(
                await session.scalars(
                    select(Project).where(Project.client_id == client_id).order_by(Project.id)
                )
            )
        return client, projects

    async def client_of_approval(self, approval_id: int) -> Client:
        async with self.sessions() as session:
            client = await session.scalar(
                select(Client)
                .join(Project, Project.client_id == Client.id)
                .join(Document, Document.project_id == Project.id)
                .join(Approval, Approval.document_id == Document.id)
                .where(Approval.id == approval_id)
            )
        if client is None:
            raise NotFound(f"Approval {approval_id} does not exist.")
        return client

    async def client_of_project(self, project_id: int) -> Client:
        async with self.sessions() as session:
            client = await session.scalar(
                select(Client)
                .join(Project, Project.client_id == Client.id)
                .where(Project.id == project_id)
            )
        if client is None:
            raise NotFound(f"Project {project_id} does not exist.")
        return client
