"""What a signing token opens: the one lookup of a signing link, for the signing page.

A token is either an approver's own link (`Approver.token_hash`, sent by email/SMS) or a
short-lived one minted from the client portal (`SigningLink`, bound to the client and the
portal session it came from).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapper, selectinload

from portico import tokens
from portico.clock import utcnow
from portico.db import DirectRead, execute_alone, read_connection
from portico.models import Approval, Approver, Client, Document, Project, SigningLink

T = TypeVar("T")


@dataclass(frozen=True)
class PortalOrigin:
    """The portal session a signing token was minted from (evidence of a decision)."""

    client_id: int
    session_id: int | None


@dataclass(frozen=True)
class OpenedLink:
    """What a signing token opens: its approver (with request, document and fellow
    approvers), the portal session it was minted from if it was, and the language and time zone
    of the client the request is for (how the page reads to them)."""

    approver: Approver
    portal: PortalOrigin | None
    client_locale: str | None
    client_timezone: str | None


async def approver_for_portal_token(
    session: AsyncSession, token_hash: str
) -> tuple[Approver, PortalOrigin] | None:
    """The approver a portal-minted signing token opens while it is valid, loaded the way the
    signing page needs it (its request with approvers and document), and where it came from.

    Tokens minted before links recorded their client (they could be for anyone's turn) open
    nothing; they lived two hours at most."""
    row = (
        await session.execute(
            select(Approver, SigningLink.client_id, SigningLink.portal_session_id)
            .join(SigningLink, SigningLink.approver_id == Approver.id)
            .where(
                SigningLink.token_hash == token_hash,
                SigningLink.expires_at > utcnow(),
            )
            .options(
                selectinload(Approver.approval).selectinload(Approval.approvers),
                selectinload(Approver.approval).selectinload(Approval.document),
            )
        )
    ).first()
    if row is None or row.client_id is None:
        return None
    return row.Approver, PortalOrigin(row.client_id, row.portal_session_id)


# What a signing page needs, in one statement: the link's approver ("me"), its request and
# document, one row per approver of that request, and the client's language. Rows made into
# transient ORM objects cost a fraction of ORM loading, and the statement runs straight on the
# driver (portico.db.DirectRead): the signing page is the busiest read path
# (docs/benchmarks.md section 1).
_ME = Approver.__table__.alias("me")
_EVERYONE = Approver.__table__.alias("everyone")
_APPROVALS = Approval.__table__
_DOCUMENTS = Document.__table__
_PROJECTS = cast(Table, Project.__table__)
_CLIENTS = cast(Table, Client.__table__)
LINK_QUERY = (
    select(
        _ME.c.id.label("me_id"),
        _CLIENTS.c.locale.label("client_locale"),
        _CLIENTS.c.timezone.label("client_timezone"),
        _APPROVALS,
        _DOCUMENTS,
        _EVERYONE,
    )
    .select_from(
        _ME.join(_APPROVALS, _APPROVALS.c.id == _ME.c.approval_id)
        .join(_DOCUMENTS, _DOCUMENTS.c.id == _APPROVALS.c.document_id)
        .join(_EVERYONE, _EVERYONE.c.approval_id == _APPROVALS.c.id)
        .outerjoin(_PROJECTS, _PROJECTS.c.id == _DOCUMENTS.c.project_id)
        .outerjoin(_CLIENTS, _CLIENTS.c.id == _PROJECTS.c.client_id)
    )
    .where(_ME.c.token_hash == bindparam("token_hash"))
    .order_by(_EVERYONE.c.position)
)
_LINK_READ = DirectRead(LINK_QUERY)
_ME_ID, _CLIENT_LOCALE, _CLIENT_TIMEZONE = (
    LINK_QUERY.selected_columns.keys().index(key)
    for key in ("me_id", "client_locale", "client_timezone")
)


def _columns(model: type, table: Any) -> list[tuple[str, int]]:
    """(attribute name, position in a LINK_QUERY row) pairs to build `model` objects."""
    mapper: Mapper[Any] = inspect(model)
    position = {id(column): i for i, column in enumerate(LINK_QUERY.selected_columns)}
    return [(attr.key, position[id(table.c[attr.columns[0].name])]) for attr in mapper.column_attrs]


_APPROVER_COLUMNS = _columns(Approver, _EVERYONE)
_APPROVAL_COLUMNS = _columns(Approval, _APPROVALS)
_DOCUMENT_COLUMNS = _columns(Document, _DOCUMENTS)


def _build(model: type[T], columns: list[tuple[str, int]], row: tuple[Any, ...]) -> T:
    """A transient `model` object filled the way the ORM fills a loaded one (its __dict__),
    without the change events `model(**values)` fires for every attribute."""
    obj: T = inspect(model).class_manager.new_instance()
    obj.__dict__.update({key: row[i] for key, i in columns})
    return obj


async def load_link(sessions: async_sessionmaker[AsyncSession], token: str) -> OpenedLink | None:
    """What a signing token opens; its approver, request, document and fellow approvers are
    transient objects (read them, never add them to a session)."""
    token_hash = tokens.hash_token(token)
    rows = await _LINK_READ.all(sessions, {"token_hash": token_hash})
    if not rows:  # a short-lived token minted from the client portal
        async with sessions() as session:
            found = await approver_for_portal_token(session, token_hash)
        if found is None:
            return None
        approver, portal = found
        locale, timezone = await client_language(sessions, approver.approval.document.project_id)
        return OpenedLink(approver, portal, locale, timezone)
    first = rows[0]
    approval = _build(Approval, _APPROVAL_COLUMNS, first)
    approvers = [_build(Approver, _APPROVER_COLUMNS, row) for row in rows]
    approval.__dict__.update(
        document=_build(Document, _DOCUMENT_COLUMNS, first), approvers=approvers
    )
    for approver in approvers:
        approver.__dict__["approval"] = approval
    me = next(a for a in approvers if a.id == first[_ME_ID])
    return OpenedLink(me, None, first[_CLIENT_LOCALE], first[_CLIENT_TIMEZONE])


def link_expired(approver: Approver) -> bool:
    """Whether an approver's own signing link has expired (a portal-minted one that expired
    is not found at all)."""
    return approver.token_expires_at <= utcnow()


async def open_link(sessions: async_sessionmaker[AsyncSession], token: str) -> OpenedLink | None:
    """What a signing token opens while it is valid: `load_link`, and nothing for a token of
    the wrong length or one that has expired."""
    if not 16 <= len(token) <= 64:
        return None
    found = await load_link(sessions, token)
    if found is None or link_expired(found.approver):
        return None
    return found


# A view counted in one Core UPDATE (no ORM session, no identity-map synchronisation), its
# own transaction: on PostgreSQL a single round trip (portico.db.execute_alone).
_APPROVER_TABLE = cast(Table, Approver.__table__)
_VIEWED_AT = bindparam("now", type_=_APPROVER_TABLE.c.last_viewed_at.type)
COUNT_VIEW = (
    update(_APPROVER_TABLE)
    .where(_APPROVER_TABLE.c.id == bindparam("approver_id"))
    .values(
        view_count=_APPROVER_TABLE.c.view_count + 1,
        first_viewed_at=func.coalesce(_APPROVER_TABLE.c.first_viewed_at, _VIEWED_AT),
        last_viewed_at=_VIEWED_AT,
        last_viewer=bindparam("viewer_hash"),
    )
)


async def count_view(
    sessions: async_sessionmaker[AsyncSession], approver_id: int, viewer_hash: str, now: datetime
) -> None:
    """One more view of an approver's link by the browser `viewer_hash`, at `now`."""
    await execute_alone(
        sessions, COUNT_VIEW, {"approver_id": approver_id, "viewer_hash": viewer_hash, "now": now}
    )


async def client_language(
    sessions: async_sessionmaker[AsyncSession], project_id: int
) -> tuple[str | None, str | None]:
    """(locale, timezone) of the client a project belongs to: how its pages read to them."""
    async with read_connection(sessions) as conn:
        row = (
            await conn.execute(
                select(Client.locale, Client.timezone)
                .join(Project, Project.client_id == Client.id)
                .where(Project.id == project_id)
            )
        ).first()
    return (row.locale, row.timezone) if row is not None else (None, None)
