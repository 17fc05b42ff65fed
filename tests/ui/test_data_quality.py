"""The pipeline page's data quality block against real PostgreSQL (#16): Validate finds the row changed on the
target and shows it side by side; a viewer sees the states but no buttons and no row data."""

from __future__ import annotations

from nicegui.testing import User

from core import pipelines
from core.pipeline_schemas import PipelineCreate
from core.security import Role
from tests.pgcluster import PgCluster
from tests.ui.helpers import WAIT, admin_actor, eventually, login, make_user, table_rows
from tests.ui.test_connections import save_connection
from tests.ui.test_pipelines import dbs, one  # noqa: F401 - fixture


def pg_value(pg: PgCluster, db: str, query: str) -> object:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute(query)
        (value,) = cur.fetchone()
    conn.close()
    return value


async def test_validate_shows_the_differing_rows_side_by_side(app_env, user: User, pg: PgCluster, dbs) -> None:  # noqa: F811
    source_db, target_db = dbs
    src, tgt = save_connection("s", pg, source_db), save_connection("t", pg, target_db)
    p = pipelines.create_pipeline(
        admin_actor(),
        PipelineCreate(
            name="crm", source_connection_id=src, target_connection_id=tgt, source_schema="crm",
            target_schema="copy", tables=["accounts", "contacts"],
        ),
    )  # fmt: skip
    await login(user)
    await user.open(f"/pipelines/{p.id}")
    await user.should_see(marker="data-quality-table", retries=WAIT)
    await eventually(lambda: {r["state"] for r in table_rows(user, "data-quality-table")} == {"NOT_VALIDATED"})
    await eventually(lambda: one(user, "data-check-status").text == "Never validated.")  # read after the table
    user.find(marker="start").click()
    await eventually(lambda: one(user, "pipeline-state").text == "STOPPED", timeout=60)

    conn = pg.connect(target_db)
    with conn.cursor() as cur:
        cur.execute("UPDATE copy.contacts SET email = 'wrong@x.io' WHERE id = 7")
        cur.execute("DELETE FROM copy.accounts WHERE id = 3")
    conn.close()
    user.find(marker="validate-data").click()
    await eventually(
        lambda: (
            {r["table"]: r["state"] for r in table_rows(user, "data-quality-table")}
            == {"crm.accounts": "MISMATCHED", "crm.contacts": "MISMATCHED"}
        ),
        timeout=60,
    )
    assert "completed" in one(user, "data-check-status").text
    rows = await eventually(lambda: table_rows(user, "mismatches-table"))
    by_key = {r["key"]: r for r in rows}
    assert by_key["id=7"]["column"] == "email" and by_key["id=7"]["kind"] == "different"
    assert (by_key["id=7"]["source"], by_key["id=7"]["target"]) == ("7@x.io", "wrong@x.io")
    assert by_key["id=3"]["kind"] == "missing on the target" and by_key["id=3"]["target"] == "—"
    assert "name=a3" in by_key["id=3"]["source"]
    await user.should_see("Rows that differ (2)", retries=WAIT)

    # Resync rows on one table (the row's button), then Validate data finds it equal
    user.find(marker="data-quality-table").trigger("resync", {"table": "crm.contacts"})
    await user.should_see("crm.contacts: 1 row(s) written from the source; validate again to confirm", retries=WAIT)
    user.find(marker="validate-data").click()
    await eventually(
        lambda: (
            {r["table"]: r["state"] for r in table_rows(user, "data-quality-table")}
            == {"crm.accounts": "MISMATCHED", "crm.contacts": "VALIDATED"}
        ),
        timeout=60,
    )
    assert pg_value(pg, target_db, "SELECT email FROM copy.contacts WHERE id = 7") == "7@x.io"
    await eventually(lambda: [r["key"] for r in table_rows(user, "mismatches-table")] == ["id=3"])

    # a viewer: the states and which rows, not their data, and no buttons
    make_user("v@example.com", "viewer-pass-1", Role.viewer)
    user.find(marker="logout").click()
    await user.should_see(marker="email", retries=WAIT)
    await login(user, "v@example.com", "viewer-pass-1")
    await user.open(f"/pipelines/{p.id}")
    await user.should_see(marker="data-quality-table", retries=WAIT)
    await user.should_not_see(marker="validate-data")
    rows = await eventually(lambda: table_rows(user, "mismatches-table"))
    assert {r["source"] for r in rows} == {"(withheld)"} and "wrong@x.io" not in str(rows)
