"""Reading the audit trail (admins only): entries filtered (see data.audit.AuditQuery), and as CSV.

Recording is core.audit; this module is apart so that core.security can record refusals through core.audit
while the reading side checks permissions with core.security.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from core.actor import Actor
from core.security import Action, require
from data import audit
from data.db import session_scope


class AuditPublic(BaseModel):
    id: int
    at: datetime
    user_email: str | None
    action: str
    target: str
    detail: str
    actor_type: str = "user"
    token_id: int | None = None
    object_type: str | None = None
    object_id: str | None = None
    outcome: str = "ok"
    changes: dict[str, Any] | None = None
    client_addr: str | None = None


MAX_LIMIT = 10000
CSV_COLUMNS = list(AuditPublic.model_fields)


def _public(entry: Any) -> AuditPublic:
    row = AuditPublic.model_validate(entry, from_attributes=True)
    return row.model_copy(update={"at": row.at.replace(tzinfo=UTC)}) if row.at.tzinfo is None else row


def _utc(at: datetime | None) -> datetime | None:
    """A bound as an aware UTC time (the column type refuses naive ones); a naive one is taken as UTC."""
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def recent(actor: Actor, limit: int = 100) -> list[AuditPublic]:
    """The newest audit entries, newest first."""
    return search(actor, audit.AuditQuery(limit=limit))


def search(actor: Actor, query: audit.AuditQuery) -> list[AuditPublic]:
    """The entries matching the query's filters, newest first (admins only; see data.audit.AuditQuery)."""
    require(actor, Action.manage_users)
    bounded = audit.AuditQuery(
        user=query.user,
        object_type=query.object_type,
        object_id=query.object_id,
        action=query.action,
        since=_utc(query.since),
        until=_utc(query.until),
        limit=max(1, min(query.limit, MAX_LIMIT)),
    )
    with session_scope() as session:
        return [_public(e) for e in audit.search(session=session, query=bounded)]


def _inert(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula (a text starting with = + - @ gets a leading ')."""
    return f"'{value}" if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") else value


def to_csv(rows: list[AuditPublic]) -> str:
    """Entries as CSV with a header row; `changes` as JSON text."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in rows:
        values = row.model_dump(mode="json")
        values["changes"] = "" if row.changes is None else json.dumps(row.changes, sort_keys=True)
        writer.writerow({k: _inert(v) for k, v in values.items()})
    return out.getvalue()
