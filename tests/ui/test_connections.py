"""Connections through the UI against a real PostgreSQL cluster: create, test, discover, edit, delete."""

from __future__ import annotations

import re

import pytest
from nicegui import ui
from nicegui.testing import User

from core import connections
from core.connections import ConnectionCreate
from core.security import Role
from tests.pgcluster import PgCluster
from tests.ui.helpers import WAIT, admin_actor, all_text, eventually, login, make_user, set_value, table_rows


@pytest.fixture
def shop(pg: PgCluster, pg_db: str) -> str:
    """pg_db with customers (25 rows) and orders referencing them."""
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());"
            "INSERT INTO customers (id, name) SELECT g, 'c' || g FROM generate_series(1, 25) g;"
            "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id),"
            " total numeric(10,2));"
            "INSERT INTO orders (customer_id, total) SELECT 1 + g % 25, g FROM generate_series(1, 40) g;"
            "CREATE TABLE audit_note (msg text);"
            "ANALYZE;"  # catalog estimates, so the exact counts below have something to replace
        )
    conn.close()
    return pg_db


def save_connection(name: str, pg: PgCluster, database: str, password: str | None = None) -> int:
    """Create a connection through the service layer, as the admin; its id."""
    data = ConnectionCreate(
        name=name,
        kind="postgresql",
        host=pg.host,
        port=pg.port,
        database=database,
        username=pg.user,
        password=pg.password if password is None else password,
    )
    return connections.create_connection(admin_actor(), data).id


def fill_form(user: User, pg: PgCluster, name: str, database: str, password: str) -> None:
    user.find(marker="conn-name").type(name)
    user.find(marker="conn-host").type(pg.host)
    user.find(marker="conn-port").clear().type(str(pg.port))
    user.find(marker="conn-database").type(database)
    user.find(marker="conn-username").type(pg.user)
    user.find(marker="conn-password").type(password)


def element(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


async def test_create_test_discover_and_delete(app_env, pg: PgCluster, shop: str, user: User) -> None:
    await login(user)
    await user.open("/connections")
    await user.should_see(marker="connections-empty")
    user.find(marker="new-connection").click()
    await user.should_see(marker="connection-form-title")
    fill_form(user, pg, "warehouse", shop, pg.password)
    user.find(marker="conn-options").type("application_name=ui-test")
    user.find(marker="form-save").click()

    # saved: the page of the new connection opens, and the password is nowhere in it
    await user.should_see(marker="connection-name", retries=WAIT)
    await user.should_see("warehouse")
    assert pg.password not in all_text(user)
    (saved,) = connections.list_connections(admin_actor())
    assert saved.name == "warehouse" and saved.options == {"application_name": "ui-test"}

    # discovery opens the connection's database and its public schema
    rows = await eventually(lambda: table_rows(user, "tables-table"), timeout=30)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"customers", "orders", "audit_note"}
    assert by_name["customers"]["row_count"] == 25 and not by_name["customers"]["row_count_exact"]
    assert by_name["orders"]["has_primary_key"] and not by_name["audit_note"]["has_primary_key"]
    assert shop in element(user, "db-select").options
    assert element(user, "db-select").value == shop
    assert element(user, "schema-select").value == "public"

    # test the connection: success in words, and a history row
    user.find(marker="test-connection").click()
    await user.should_see("Connected: PostgreSQL", retries=WAIT)
    assert re.search(r"\d+(\.\d)? ms round trip", element(user, "test-result").text)
    history = await eventually(lambda: table_rows(user, "test-history"))
    assert len(history) == 1 and history[0]["result"] == "ok"

    # one table's detail: columns, primary key, foreign keys both ways
    user.find(marker="tables-table").trigger("rowClick", "public.orders")
    columns = await eventually(lambda: table_rows(user, "columns-table"))
    assert [c["name"] for c in columns] == ["id", "customer_id", "total"]
    assert {c["name"]: c["nullable"] for c in columns}["total"] == "yes"
    await user.should_see("Primary key: id")
    (fk,) = table_rows(user, "fk-table")
    assert fk["to"] == "public.customers(id)"
    user.find(marker="tables-table").trigger("rowClick", "public.customers")
    await eventually(lambda: table_rows(user, "referenced-by-table"))

    # an exact count of one table, then of all
    user.find(marker="tables-table").trigger("count", "public.orders")
    await user.should_see("public.orders: 40 rows", retries=WAIT)
    rows = {r["name"]: r for r in table_rows(user, "tables-table")}
    assert rows["orders"]["row_count_exact"] and not rows["customers"]["row_count_exact"]
    user.find(marker="exact-counts").click()
    await eventually(lambda: all(r["row_count_exact"] for r in table_rows(user, "tables-table")))
    await user.should_not_see(marker="discovery-spinner", retries=WAIT)

    # dependencies: customers before orders
    set_value(user, "dep-tables", ["orders", "customers", "audit_note"])
    user.find(marker="dep-run").click()
    await user.should_see(marker="dep-level", retries=WAIT)
    levels = [
        [c.text for c in row.descendants() if isinstance(c, ui.chip)] for row in user.find(marker="dep-level").elements
    ]
    assert sorted(levels) == [["audit_note", "customers"], ["orders"]]

    # another database of the same server is browsable too
    set_value(user, "db-select", "postgres")
    await eventually(lambda: element(user, "schema-select").value == "public")
    await eventually(
        lambda: table_rows(user, "tables-table") == [] and "no tables" in element(user, "tables-summary").text
    )

    # back on the list the connection shows its last test; then delete it from its page
    await user.open("/connections")
    (row,) = await eventually(lambda: table_rows(user, "connections-table"))
    assert row["name"] == "warehouse" and row["endpoint"] == f"{pg.host}:{pg.port}" and row["test_status"] == "ok"
    await user.open(f"/connections/{saved.id}")
    user.find(marker="delete-connection").click()
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await user.should_see(marker="connections-empty", retries=WAIT)
    assert connections.list_connections(admin_actor()) == []


async def test_failing_test_shows_the_reason_in_words(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    connection_id = save_connection("bad-password", pg, pg_db, password="wrong-password")
    await login(user)
    await user.open(f"/connections/{connection_id}")
    user.find(marker="test-connection").click()
    await user.should_see("password authentication failed", retries=WAIT)
    assert element(user, "test-result").text.startswith("Login failed:")
    assert "Traceback" not in all_text(user)
    (row,) = await eventually(lambda: table_rows(user, "test-history"))
    assert row["result"] == "failed" and "password authentication failed" in row["error"]
    # discovery says the same in words instead of showing tables
    await eventually(lambda: "Password authentication failed" in element(user, "discovery-error").text)
    await user.should_not_see(marker="tables-table")  # the reason only, not an empty table


async def test_duplicate_name_is_a_conflict_and_saves_nothing(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    save_connection("taken", pg, pg_db)
    await login(user)
    await user.open("/connections")
    user.find(marker="new-connection").click()
    fill_form(user, pg, "taken", pg_db, pg.password)
    user.find(marker="form-save").click()
    await user.should_see("A connection named 'taken' already exists", retries=WAIT)
    await user.should_see(marker="connection-form-title")  # the dialog stays open
    assert [c.name for c in connections.list_connections(admin_actor())] == ["taken"]


async def test_invalid_fields_are_named_and_nothing_is_saved(app_env, user: User) -> None:
    await login(user)
    await user.open("/connections")
    user.find(marker="new-connection").click()
    user.find(marker="conn-name").type("half-filled")
    user.find(marker="conn-options").type("sslmode=require\nno-equals-sign")
    user.find(marker="form-save").click()
    await user.should_see("Extra options: line 2 ('no-equals-sign') is not in the form key=value")
    user.find(marker="conn-options").clear()
    user.find(marker="form-save").click()
    await user.should_see("Host: is required")
    assert element(user, "conn-host").error == "is required"
    set_value(user, "conn-port", 70000)
    user.find(marker="form-save").click()
    await user.should_see("Port: must be at most 65535")
    assert connections.list_connections(admin_actor()) == []


async def test_switching_kind_changes_only_a_default_port(app_env, user: User) -> None:
    await login(user)
    await user.open("/connections")
    user.find(marker="new-connection").click()
    assert element(user, "conn-port").value == 5432
    set_value(user, "conn-kind", "sqlserver")
    assert element(user, "conn-port").value == 1433
    set_value(user, "conn-port", 1500)
    set_value(user, "conn-kind", "postgresql")
    assert element(user, "conn-port").value == 1500


async def test_edit_keeps_the_password_when_left_empty(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    connection_id = save_connection("to-edit", pg, pg_db)
    await login(user)
    await user.open(f"/connections/{connection_id}")
    user.find(marker="edit-connection").click()
    await user.should_see(marker="connection-form-title")
    assert element(user, "conn-password").value in ("", None)
    assert element(user, "conn-name").value == "to-edit"
    user.find(marker="conn-name").clear().type("edited")
    user.find(marker="conn-schema").type("public")
    user.find(marker="form-save").click()
    await user.should_see("Saved connection edited", retries=WAIT)
    await eventually(lambda: element(user, "connection-name").text == "edited")
    connector = connections.connector_for(admin_actor(), connection_id)
    assert connector.spec.password == pg.password and connector.spec.schema == "public"
    assert pg.password not in all_text(user)


async def test_viewer_sees_connections_read_only(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    connection_id = save_connection("shared", pg, pg_db)
    make_user("viewer@example.com", "viewer-pass-1", Role.viewer)
    await login(user, "viewer@example.com", "viewer-pass-1")
    await user.open("/connections")
    (row,) = await eventually(lambda: table_rows(user, "connections-table"))
    assert row["name"] == "shared"
    (table,) = [e for e in user.find(marker="connections-table").elements if isinstance(e, ui.table)]
    assert "actions" not in [c["name"] for c in table.columns]
    await user.should_not_see(marker="new-connection")
    await user.open(f"/connections/{connection_id}")
    await user.should_see(marker="test-connection")
    await user.should_not_see(marker="edit-connection")
    await user.should_not_see(marker="delete-connection")
    await user.should_not_see("Users")  # the nav hides the admin page


async def test_unknown_connection_says_so(app_env, user: User) -> None:
    await login(user)
    await user.open("/connections/999")
    await user.should_see("Connection 999 not found")
