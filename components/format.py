"""Small formatters shared by pages: sizes, durations, times, key=value options."""

from __future__ import annotations

from datetime import UTC, datetime

from core.errors import ValidationFailed

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")

# One colour per pipeline state (Quasar colour names), the same on every page that shows a state.
STATE_COLORS: dict[str, str] = {
    "RUNNING": "green-7",
    "PAUSED": "amber-8",
    "STOPPED": "grey-7",
    "NOT_STARTED": "grey-5",
    "ERROR": "red-7",
    "STARTING": "blue-6",
    "STOPPING": "blue-6",
}


def state_color(state: str | None) -> str:
    """The Quasar colour of a pipeline state's badge (grey when unknown)."""
    return STATE_COLORS.get(state or "", "grey")


def state_badge_slot(palette: dict[str, str] | None = None) -> str:
    """A q-table body-cell slot that renders a state as a coloured badge (pipeline states unless `palette`)."""
    colors = ", ".join(f"{k}: '{v}'" for k, v in (palette or STATE_COLORS).items())
    return (
        '<q-td :props="props">'
        f'<q-badge :color="({{{colors}}})[props.value] || \'grey\'" :label="props.value" '
        ':data-state="props.value" />'
        "</q-td>"
    )


def human_bytes(size: int | float | None) -> str:
    """A byte count as people read it: 0 B, 812 B, 8.0 KiB, 1.5 GiB; '—' when unknown."""
    if size is None or size < 0:
        return "—"
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_count(count: int | None) -> str:
    """A row count with thousands separators; '—' when unknown."""
    return "—" if count is None or count < 0 else f"{count:,}"


def ms(latency_ms: float | None) -> str:
    """A latency in milliseconds, or '—'."""
    if latency_ms is None:
        return "—"
    return f"{latency_ms:.0f} ms" if latency_ms >= 100 else f"{latency_ms:.1f} ms"


def _aware(at: datetime) -> datetime:
    # SQLite gives back naive datetimes; the app stores UTC.
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def timestamp(at: datetime | None) -> str:
    """A stored UTC time as 'YYYY-MM-DD HH:MM:SS UTC'."""
    if at is None:
        return "—"
    return _aware(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(at: datetime | None, now: datetime | None = None) -> str:
    """How long ago, coarsely: 'just now', '5 min ago', '3 h ago', '2 d ago'."""
    if at is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - _aware(at)).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def parse_options(text: str | None) -> dict[str, str]:
    """Parse `key=value` lines (blank lines and # comments skipped) into a dict.

    Raises ValidationFailed naming the line that is not `key=value`.
    """
    out: dict[str, str] = {}
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValidationFailed("options", f"line {number} ('{line}') is not in the form key=value")
        out[key.strip()] = value.strip()
    return out


def format_options(options: dict[str, str] | None) -> str:
    """Options as `key=value` lines, the inverse of parse_options."""
    return "\n".join(f"{k}={v}" for k, v in (options or {}).items())


_DATE_PARTS = "year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit'"


def iso_utc(at: datetime | str | None) -> str | None:
    """A stored time as ISO 8601 with its UTC offset, so a browser reads it as UTC, not as local time."""
    if at is None:
        return None
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return _aware(at).astimezone(UTC).isoformat()


def time_js(expr: str, utc: bool = False, millis: bool = False) -> str:
    """A JavaScript expression that shows the ISO time `expr` with date and zone in the browser.

    Local time in the browser's own time zone (its abbreviation shown) unless `utc`; the
    person's choice is the per-user setting 'always show UTC'.
    """
    if utc:
        end = 23 if millis else 19
        return f"(({expr}) ? new Date({expr}).toISOString().replace('T', ' ').slice(0, {end}) + ' UTC' : '—')"
    extra = ", fractionalSecondDigits: 3" if millis else ""
    options = f"{{{_DATE_PARTS}, timeZoneName: 'short'{extra}}}"
    return f"(({expr}) ? new Date({expr}).toLocaleString('sv-SE', {options}) : '—')"


def utc_title_js(expr: str) -> str:
    """A JavaScript expression for the hover text of a time: the same instant in UTC."""
    return f"(({expr}) ? new Date({expr}).toISOString().replace('T', ' ').slice(0, 23) + ' UTC' : '')"


def time_cell_slot(utc: bool = False, millis: bool = False) -> str:
    """A q-table body-cell slot showing an ISO time cell in the browser's zone, UTC on hover."""
    text, title = time_js("props.value", utc, millis), utc_title_js("props.value")
    return f'<q-td :props="props"><span class="whitespace-nowrap" :title="{title}">{{{{ {text} }}}}</span></q-td>'
