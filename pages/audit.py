"""The audit trail (admins): who did what, when, to which object, with what outcome and which fields changed;
filters and a CSV download of what the filters select."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nicegui import run, ui

from components.frame import frame
from components.messages import plain
from core import audit_trail as audit
from core.audit import OBJECT_TYPES
from core.errors import StudioError, ValidationFailed
from core.security import Action, can
from data.audit import AuditQuery

RANGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
COLUMNS = [
    {"name": "at", "label": "Time (UTC)", "field": "at", "align": "left"},
    {"name": "who", "label": "Who", "field": "who", "align": "left"},
    {"name": "action", "label": "Action", "field": "action", "align": "left"},
    {"name": "object", "label": "Object", "field": "object", "align": "left"},
    {"name": "outcome", "label": "Outcome", "field": "outcome", "align": "left"},
    {"name": "changes", "label": "Changes", "field": "changes", "align": "left"},
]


def _changes(changes: dict | None) -> str:
    if not changes:
        return ""
    return "; ".join(f"{field}: {before!r} → {after!r}" for field, (before, after) in changes.items())


def _row(e: audit.AuditPublic) -> dict:
    who = e.user_email or e.actor_type
    if e.actor_type == "token":
        who = f"{who} (token {e.token_id})"
    elif e.actor_type == "anonymous":
        who = f"{who} (not signed in)"
    obj = " ".join(x for x in (e.object_type or "", f"#{e.object_id}" if e.object_id else "", e.target) if x)
    return {
        "id": e.id,
        "at": e.at.strftime("%Y-%m-%d %H:%M:%S"),
        "who": who,
        "action": e.action,
        "object": obj,
        "outcome": e.outcome,
        "changes": _changes(e.changes) or e.detail,
    }


def utc_moment(text: str | None, label: str, end: bool = False) -> datetime | None:
    """A time typed as YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS], in UTC (None when empty). A date alone as `end`
    means the end of that day."""
    text = (text or "").strip()
    if not text:
        return None
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            at = datetime.strptime(text, form).replace(tzinfo=UTC)
        except ValueError:
            continue
        return at + timedelta(days=1, microseconds=-1) if end and form == "%Y-%m-%d" else at
    raise ValidationFailed(label, "write the time as YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)")


async def audit_page() -> None:
    """Admins only; others see why not."""
    async with frame("Audit") as actor:
        if not can(actor.role, Action.manage_users):
            ui.label("You need the admin role to see the audit trail.").classes("text-grey-8").mark("audit-denied")
            return
        with ui.row().classes("items-end gap-3"):
            user = ui.input("User (part of the email)").mark("audit-user")
            object_type = (
                ui.select(["", *OBJECT_TYPES], label="Object", value="").classes("w-36").mark("audit-object-type")
            )
            object_id = ui.input("Object id").classes("w-28").mark("audit-object-id")
            action = ui.input("Action (or a prefix like pipeline.)").mark("audit-action")
            period = (
                ui.select(["all", *RANGES, "custom"], label="Time", value="all").classes("w-28").mark("audit-range")
            )
            since_at = ui.input("From (UTC)", placeholder="YYYY-MM-DD HH:MM").classes("w-40").mark("audit-since")
            until_at = ui.input("To (UTC)", placeholder="YYYY-MM-DD HH:MM").classes("w-40").mark("audit-until")
            for field in (since_at, until_at):
                field.bind_visibility_from(period, "value", backward=lambda v: v == "custom")
            ui.button("Apply", icon="filter_alt", on_click=lambda: reload()).mark("audit-apply")
            ui.button("CSV", icon="download", on_click=lambda: download()).props("outline").mark("audit-csv")
        table = (
            ui.table(columns=COLUMNS, rows=[], row_key="id", pagination=50)
            .classes("w-full")
            .props("flat bordered wrap-cells")
            .mark("audit-table")
        )

        def query() -> AuditQuery:
            since = datetime.now(UTC) - RANGES[period.value] if period.value in RANGES else None
            until = None
            if period.value == "custom":
                since, until = utc_moment(since_at.value, "From"), utc_moment(until_at.value, "To", end=True)
                if since and until and until < since:
                    raise ValidationFailed("To", "is before From")
            return AuditQuery(
                user=(user.value or "").strip() or None,
                object_type=object_type.value or None,
                object_id=(object_id.value or "").strip() or None,
                action=(action.value or "").strip() or None,
                since=since,
                until=until,
                limit=5000,
            )

        async def rows() -> list[audit.AuditPublic] | None:
            try:
                return await run.io_bound(audit.search, actor, query())
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return None

        async def reload() -> None:
            found = await rows()
            if found is not None:
                table.rows = [_row(e) for e in found]

        async def download() -> None:
            found = await rows()
            if found is not None:
                stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
                ui.download(audit.to_csv(found).encode(), f"audit-{stamp}.csv", "text/csv")

        await reload()
