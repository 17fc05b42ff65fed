"""Which source tables a pipeline copies: names, wildcards, exclusions and explicit renames."""

from __future__ import annotations

from fnmatch import fnmatchcase

from core.errors import ValidationFailed

WILDCARDS = set("*?[")


def is_pattern(text: str) -> bool:
    return any(ch in WILDCARDS for ch in text)


def select_tables(
    available: list[str], patterns: list[str], exclude: list[str] | None = None, mappings: list[dict] | None = None
) -> list[tuple[str, str]]:
    """(source, target) pairs in the order of `available`.

    A plain name must exist (case-sensitive, as the database spells it); a wildcard (`cust_*`,
    `?`, `[abc]`) may match nothing as long as something is selected overall. Exclusions are
    patterns too. `mappings` [{source, target}] rename targets and also select their sources.
    """
    exclude = exclude or []
    mappings = mappings or []
    names = set(available)
    for p in patterns:
        if not is_pattern(p) and p not in names:
            raise ValidationFailed("tables", f"table '{p}' does not exist in the source schema")
    renames: dict[str, str] = {}
    for m in mappings:
        src, tgt = m["source"], m["target"]
        if src not in names:
            raise ValidationFailed("table_mappings", f"table '{src}' does not exist in the source schema")
        renames[src] = tgt
    chosen = [
        t
        for t in available
        if (any(fnmatchcase(t, p) for p in patterns) or t in renames) and not any(fnmatchcase(t, x) for x in exclude)
    ]
    if not chosen:
        raise ValidationFailed("tables", f"no source table matches {', '.join(patterns) or 'the selection'}")
    pairs = [(t, renames.get(t, t)) for t in chosen]
    targets = [tgt for _, tgt in pairs]
    dupes = sorted({t for t in targets if targets.count(t) > 1})
    if dupes:
        raise ValidationFailed("table_mappings", f"several source tables map to the same target: {', '.join(dupes)}")
    return pairs
