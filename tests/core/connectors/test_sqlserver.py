"""SQL Server connector without a server: connection strings, error translation, the catalog SQL
sent and the shaping of its rows, through a fake connection; plus one real FreeTDS connect."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import Any

import pyodbc
import pytest

from core.connectors import get_connector
from core.connectors import sqlserver as ss
from core.connectors.base import ColumnInfo, ConnectionSpec, ForeignKeyInfo, IndexInfo, TableInfo
from core.connectors.sqlserver import (
    SqlServerConnector,
    build_connection_string,
    clean_default,
    exact_counts_query,
    odbc_value,
    pick_driver,
    quote_ident,
    render_type,
    server_message,
    short_version,
    translate_error,
)
from core.errors import (
    AuthFailed,
    ConnectionRefused,
    ConnectorError,
    ConnectTimeout,
    DatabaseNotFound,
    DriverMissing,
    ObjectNotFound,
    QueryFailed,
    UnknownHost,
    ValidationFailed,
)
from tests.pgcluster import free_port

PASSWORD = "Sup3r;S3cret}pw"
MS18 = ["ODBC Driver 18 for SQL Server"]


def make_spec(**kw: Any) -> ConnectionSpec:
    base: dict[str, Any] = dict(
        kind="sqlserver", host="db.example.com", port=1433, database="Sales", username="sa", password=PASSWORD
    )
    base.update(kw)
    return ConnectionSpec(**base)


# --------------------------------------------------------------------------------------------
# Connection strings


def test_connection_string_for_microsoft_driver() -> None:
    spec = make_spec(password="plain", options={"Encrypt": "yes", "TrustServerCertificate": "yes"})
    assert build_connection_string(spec, installed=MS18) == (
        "DRIVER={ODBC Driver 18 for SQL Server};SERVER=db.example.com,1433;DATABASE=Sales;"
        "UID=sa;PWD=plain;Encrypt=yes;TrustServerCertificate=yes;"
    )


def test_connection_string_database_override_and_default_port() -> None:
    spec = make_spec(password="plain", port=0)
    conn = build_connection_string(spec, "Other DB", installed=MS18)
    assert "SERVER=db.example.com,1433;" in conn
    assert "DATABASE=Other DB;" in conn and "Sales" not in conn


def test_connection_string_freetds_form() -> None:
    spec = make_spec(password="plain", port=14330)
    assert build_connection_string(spec, installed=["FreeTDS"]) == (
        "DRIVER={FreeTDS};SERVER=db.example.com;PORT=14330;DATABASE=Sales;UID=sa;PWD=plain;TDS_Version=7.4;"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("with space inside", "with space inside"),
        ("semi;colon", "{semi;colon}"),
        ("close}brace", "{close}}brace}"),
        ("open{brace", "{open{brace}"),
        (" leading", "{ leading}"),
        ("trailing ", "{trailing }"),
        ("a=b", "{a=b}"),
        ("}};{", "{}}}};{}"),
    ],
)
def test_odbc_value_escaping(value: str, expected: str) -> None:
    assert odbc_value(value) == expected


def test_connection_string_escapes_every_value() -> None:
    spec = make_spec(username="dom;user", password="p}w{d ", database="we]ird;db", options={"App": "x;y"})
    conn = build_connection_string(spec, installed=MS18)
    assert "UID={dom;user};" in conn
    assert "PWD={p}}w{d };" in conn
    assert "DATABASE={we]ird;db};" in conn
    assert "App={x;y};" in conn


def test_password_with_braces_round_trips_through_the_driver_manager_parser() -> None:
    """The braced form is what the ODBC grammar expects: '}}' inside braces is one '}'."""
    raw = "p}w;d"
    value = odbc_value(raw)
    assert value.startswith("{") and value.endswith("}")
    assert value[1:-1].replace("}}", "}") == raw


def test_driver_selection_prefers_newest_microsoft_then_freetds() -> None:
    spec = make_spec()
    assert pick_driver(spec, ["FreeTDS", "ODBC Driver 17 for SQL Server", "ODBC Driver 18 for SQL Server"]) == (
        "ODBC Driver 18 for SQL Server"
    )
    assert pick_driver(spec, ["FreeTDS", "ODBC Driver 17 for SQL Server"]) == "ODBC Driver 17 for SQL Server"
    assert pick_driver(spec, ["PostgreSQL Unicode", "FreeTDS"]) == "FreeTDS"


def test_driver_from_options_wins_and_freetds_form_follows_it() -> None:
    spec = make_spec(password="pw1", options={"driver": "{FreeTDS}"})
    conn = build_connection_string(spec, installed=MS18)
    assert conn.startswith("DRIVER={FreeTDS};SERVER=db.example.com;PORT=1433;")
    assert "TDS_Version=7.4" in conn and "driver=" not in conn.lower().replace("driver={freetds}", "")
    spec = make_spec(options={"odbc_driver": "ODBC Driver 17 for SQL Server"})
    assert build_connection_string(spec, installed=[]).startswith("DRIVER={ODBC Driver 17 for SQL Server};")


def test_options_cannot_override_spec_fields_and_bad_keywords_are_refused() -> None:
    spec = make_spec(password="pw1", options={"PWD": "evil", "Server": "elsewhere", "ApplicationIntent": "ReadOnly"})
    conn = build_connection_string(spec, installed=MS18)
    assert "evil" not in conn and "elsewhere" not in conn
    assert "ApplicationIntent=ReadOnly;" in conn
    assert (
        build_connection_string(make_spec(options={"TDS_Version": "8.0"}), installed=["FreeTDS"]).count("TDS_Version")
        == 1
    )
    with pytest.raises(ValidationFailed):
        build_connection_string(make_spec(options={"x;PWD": "1"}), installed=MS18)


def test_missing_driver_is_driver_missing() -> None:
    with pytest.raises(DriverMissing, match="unixODBC.*msodbcsql18 or tdsodbc"):
        build_connection_string(make_spec(), installed=["PostgreSQL Unicode"])


def test_pyodbc_not_importable_is_driver_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyodbc", None)
    with pytest.raises(DriverMissing, match="unixODBC"):
        build_connection_string(make_spec())
    with pytest.raises(DriverMissing):
        SqlServerConnector(make_spec()).list_databases()


def test_installed_freetds_is_found_through_pyodbc() -> None:
    if "FreeTDS" not in pyodbc.drivers():
        pytest.skip("FreeTDS is not registered with unixODBC")
    assert build_connection_string(make_spec()).startswith("DRIVER={")


def test_get_connector_returns_sqlserver() -> None:
    connector = get_connector(make_spec())
    assert isinstance(connector, SqlServerConnector)
    assert connector.kind == "sqlserver" and connector.default_port == 1433


# --------------------------------------------------------------------------------------------
# Errors


def err(cls: type[pyodbc.Error], state: str, message: str) -> pyodbc.Error:
    """An exception as pyodbc raises it: (SQLSTATE, '[STATE] [vendor][driver]text (native) (call)')."""
    return cls(state, message)


CASES = [
    (
        err(
            pyodbc.InterfaceError,
            "28000",
            "[28000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Login failed for user 'sa'. "
            "(18456) (SQLDriverConnect)",
        ),
        AuthFailed,
        "login failed for user 'sa'",
    ),
    (
        err(
            pyodbc.Error,
            "42000",
            "[42000] [FreeTDS][SQL Server]Login failed for user 'sa'. (18456) (SQLDriverConnect)",
        ),
        AuthFailed,
        "login failed for user 'sa'",
    ),
    (
        err(
            pyodbc.OperationalError,
            "HYT00",
            "[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired (0) (SQLDriverConnect)",
        ),
        ConnectTimeout,
        "timeout after 5 s connecting to db.example.com:1433",
    ),
    (
        err(
            pyodbc.OperationalError,
            "08S01",
            "[08S01] [FreeTDS][SQL Server]Unable to connect: Adaptive Server connection timed out (20003) "
            "(SQLDriverConnect)",
        ),
        ConnectTimeout,
        "timeout after 5 s",
    ),
    (
        err(
            pyodbc.OperationalError,
            "08001",
            "[08001] [Microsoft][ODBC Driver 18 for SQL Server]TCP Provider: Error code 0x2AF9 (11001) "
            "(SQLDriverConnect); [08001] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired (0)",
        ),
        UnknownHost,
        "unknown host 'db.example.com'",
    ),
    (
        err(
            pyodbc.OperationalError,
            "08001",
            "[08001] [unixODBC]getaddrinfo failed: Temporary failure in name resolution (0) (SQLDriverConnect)",
        ),
        UnknownHost,
        "unknown host",
    ),
    (
        err(
            pyodbc.OperationalError,
            "08001",
            "[08001] [Microsoft][ODBC Driver 17 for SQL Server]TCP Provider: Connection refused (111) "
            "(SQLDriverConnect)",
        ),
        ConnectionRefused,
        "connection refused by db.example.com:1433",
    ),
    (
        err(
            pyodbc.ProgrammingError,
            "42000",
            '[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Cannot open database "Nope" '
            "requested by the login. The login failed. (4060) (SQLDriverConnect); [28000] [Microsoft][ODBC "
            "Driver 18 for SQL Server][SQL Server]Login failed for user 'sa'. (18456)",
        ),
        DatabaseNotFound,
        "cannot open database 'Nope'",
    ),
    (
        err(
            pyodbc.ProgrammingError,
            "42S02",
            "[42S02] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Invalid object name 'dbo.Gone'. "
            "(208) (SQLExecDirectW)",
        ),
        ObjectNotFound,
        "Invalid object name 'dbo.Gone'.",
    ),
    (
        err(
            pyodbc.InterfaceError,
            "IM002",
            "[IM002] [unixODBC][Driver Manager]Data source name not found and no default driver specified "
            "(0) (SQLDriverConnect)",
        ),
        DriverMissing,
        "msodbcsql18 or tdsodbc",
    ),
    (
        err(
            pyodbc.Error,
            "01000",
            "[01000] [unixODBC][Driver Manager]Can't open lib 'ODBC Driver 18 for SQL Server' : file not "
            "found (0) (SQLDriverConnect)",
        ),
        DriverMissing,
        "ODBC driver 'ODBC Driver 18 for SQL Server' is not installed",
    ),
    (
        err(
            pyodbc.ProgrammingError,
            "42000",
            "[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Incorrect syntax near 'FROM'. "
            "(102) (SQLExecDirectW)",
        ),
        QueryFailed,
        "Incorrect syntax near 'FROM'.",
    ),
    (
        err(
            pyodbc.OperationalError,
            "08S01",
            "[08S01] [FreeTDS][SQL Server]Unable to connect: Adaptive Server is unavailable or does not "
            "exist (20009) (SQLDriverConnect)",
        ),
        ConnectionRefused,
        "cannot reach SQL Server at db.example.com:1433",
    ),
    (
        err(
            pyodbc.OperationalError,
            "08001",
            "[08001] [Microsoft][ODBC Driver 18 for SQL Server]SSL Provider: [error:0A000086:SSL "
            "routines::certificate verify failed:self-signed certificate] (-1) (SQLDriverConnect)",
        ),
        ConnectorError,
        "TrustServerCertificate=yes",
    ),
]


@pytest.mark.parametrize(("exc", "kind", "words"), CASES)
def test_translate_error(exc: pyodbc.Error, kind: type[ConnectorError], words: str) -> None:
    out = translate_error(exc, make_spec())
    assert type(out) is kind
    assert words in str(out)
    assert "[Microsoft]" not in str(out) and "(SQLDriverConnect)" not in str(out)
    assert PASSWORD not in str(out)


def test_error_kinds_and_transience() -> None:
    spec = make_spec()
    assert translate_error(CASES[0][0], spec).kind == "auth_failed"
    assert translate_error(CASES[2][0], spec).transient is True
    assert translate_error(CASES[8][0], spec).kind == "object_not_found"


def test_password_is_scrubbed_from_every_message() -> None:
    spec = make_spec()
    leaky = [
        err(pyodbc.ProgrammingError, "42000", f"[42000] [SQL Server]Incorrect syntax near '{PASSWORD}'. (102)"),
        err(pyodbc.Error, "HY000", f"[HY000] bad connection string DRIVER={{x}};PWD={odbc_value(PASSWORD)};"),
        err(pyodbc.Error, "HY000", "[HY000] something PWD=hunter2; went wrong"),
        RuntimeError(f"plain {PASSWORD}"),
    ]
    for exc in leaky:
        message = str(translate_error(exc, spec))
        assert PASSWORD not in message and odbc_value(PASSWORD) not in message
        assert "hunter2" not in message


def test_translate_error_passes_connector_errors_through() -> None:
    original = ObjectNotFound("x")
    assert translate_error(original, make_spec()) is original


def test_server_message_drops_tags_and_numbers() -> None:
    raw = (
        '[42000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Cannot open database "X". (4060) '
        "(SQLDriverConnect); [28000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Login failed. "
        "(18456)"
    )
    assert server_message(raw) == 'Cannot open database "X".; Login failed.'


def test_probe_names_unknown_host_when_driver_is_vague(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(ss.socket, "getaddrinfo", no_such_host)
    vague = err(
        pyodbc.OperationalError,
        "08001",
        "[08001] [FreeTDS][SQL Server]Unable to connect to data source (0) (SQLDriverConnect)",
    )
    assert type(translate_error(vague, make_spec())) is ConnectionRefused
    out = translate_error(vague, make_spec(), probe=True)
    assert type(out) is UnknownHost and "db.example.com" in str(out)


def test_probe_on_a_closed_port_is_refused() -> None:
    port = free_port()
    out = ss.probe_endpoint("127.0.0.1", port, 2)
    assert type(out) is ConnectionRefused and f"127.0.0.1:{port}" in str(out)


def test_probe_on_an_open_port_is_no_network_problem() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert ss.probe_endpoint("127.0.0.1", server.getsockname()[1], 2) is None


def test_real_freetds_connect_to_closed_port_is_translated() -> None:
    """Through unixODBC and FreeTDS for real: nothing listens, the error says so in plain words."""
    if "FreeTDS" not in pyodbc.drivers():
        pytest.skip("FreeTDS is not registered with unixODBC")
    port = free_port()
    spec = ConnectionSpec(
        kind="sqlserver",
        host="127.0.0.1",
        port=port,
        database="master",
        username="sa",
        password=PASSWORD,
        options={"driver": "FreeTDS"},
        connect_timeout_s=2,
    )
    with pytest.raises(ConnectorError) as caught:
        SqlServerConnector(spec).test()
    assert isinstance(caught.value, ConnectionRefused | ConnectTimeout)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert PASSWORD not in message and "[FreeTDS]" not in message
    assert caught.value.__cause__ is None  # the driver's exception does not travel along


# --------------------------------------------------------------------------------------------
# Pure helpers


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("nvarchar", 100, 0, 0), "nvarchar(50)"),
        (("nvarchar", -1, 0, 0), "nvarchar(max)"),
        (("nchar", 20, 0, 0), "nchar(10)"),
        (("varchar", 255, 0, 0), "varchar(255)"),
        (("varchar", -1, 0, 0), "varchar(max)"),
        (("char", 3, 0, 0), "char(3)"),
        (("varbinary", -1, 0, 0), "varbinary(max)"),
        (("binary", 16, 0, 0), "binary(16)"),
        (("decimal", 9, 18, 2), "decimal(18,2)"),
        (("numeric", 5, 10, 0), "numeric(10,0)"),
        (("datetime2", 8, 27, 7), "datetime2(7)"),
        (("datetime2", 6, 19, 0), "datetime2(0)"),
        (("time", 5, 16, 7), "time(7)"),
        (("datetimeoffset", 10, 34, 7), "datetimeoffset(7)"),
        (("int", 4, 10, 0), "int"),
        (("bigint", 8, 19, 0), "bigint"),
        (("bit", 1, 1, 0), "bit"),
        (("datetime", 8, 23, 3), "datetime"),
        (("float", 8, 53, 0), "float"),
        (("uniqueidentifier", 16, 0, 0), "uniqueidentifier"),
        (("money", 8, 19, 4), "money"),
        (("xml", -1, 0, 0), "xml"),
        (("geography", -1, 0, 0), "geography"),
        (("NVARCHAR", 20, 0, 0), "nvarchar(10)"),
    ],
)
def test_render_type(args: tuple[str, int, int, int], expected: str) -> None:
    assert render_type(*args) == expected


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ("((0))", "0"),
        ("(getdate())", "getdate()"),
        ("(N'a(b')", "N'a(b'"),
        ("((1)+(2))", "(1)+(2)"),
        (None, None),
    ],
)
def test_clean_default(definition: str | None, expected: str | None) -> None:
    assert clean_default(definition) == expected


def test_short_version() -> None:
    full = (
        "Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64) \n\tOct  8 2022 05:58:25 \n\t"
        "Copyright (C) 2022 Microsoft Corporation\n\tDeveloper Edition (64-bit) on Linux"
    )
    assert short_version(full) == "Microsoft SQL Server 2022 (RTM) 16.0.1000.6"
    cu = "Microsoft SQL Server 2019 (RTM-CU22) (KB5027702) - 15.0.4322.2 (X64) \n\tJul 27 2023"
    assert short_version(cu) == "Microsoft SQL Server 2019 (RTM-CU22) 15.0.4322.2"


def test_quote_ident() -> None:
    assert quote_ident("Order") == "[Order]"
    assert quote_ident("we]ird") == "[we]]ird]"
    assert quote_ident("a]]b") == "[a]]]]b]"


def test_exact_counts_query_is_one_union_all_statement() -> None:
    sql, params = exact_counts_query("dbo", ["Order", "we]ird"])
    assert params == ()
    assert sql == (
        "SELECT 0 AS i, COUNT_BIG(*) AS n FROM [dbo].[Order]\nUNION ALL\n"
        "SELECT 1 AS i, COUNT_BIG(*) AS n FROM [dbo].[we]]ird]"
    )


# --------------------------------------------------------------------------------------------
# The connector against a fake connection


Responder = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


class FakeCursor:
    def __init__(self, respond: Responder, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.respond, self.calls, self.rows = respond, calls, []

    def execute(self, sql: str, *params: Any) -> FakeCursor:
        self.calls.append((sql, params))
        self.rows = self.respond(sql, params)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self.rows)

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, respond: Responder, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
        self.respond, self.calls, self.closed = respond, calls, False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.respond, self.calls)

    def close(self) -> None:
        self.closed = True


class Fake:
    """Installs a fake `odbc_connect`; records databases connected to, SQL sent and connections closed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, respond: Responder) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.databases: list[str | None] = []
        self.connections: list[FakeConnection] = []

        def connect(spec: ConnectionSpec, *, autocommit: bool = True, database: str | None = None) -> FakeConnection:
            self.databases.append(database)
            conn = FakeConnection(respond, self.calls)
            self.connections.append(conn)
            return conn

        monkeypatch.setattr(ss, "odbc_connect", connect)

    def sql_containing(self, fragment: str) -> list[tuple[str, tuple[Any, ...]]]:
        return [c for c in self.calls if fragment in c[0]]


def dispatch(table: dict[str, Any]) -> Responder:
    """Answer by the first fragment found in the SQL; a value may be rows or a callable/exception."""

    def respond(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for fragment, answer in table.items():
            if fragment in sql:
                if isinstance(answer, BaseException):
                    raise answer
                return answer(params) if callable(answer) else answer
        raise AssertionError(f"unexpected SQL: {sql}")

    return respond


def connector() -> SqlServerConnector:
    return SqlServerConnector(make_spec())


def test_test_reports_short_version_and_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake(monkeypatch, dispatch({"@@VERSION": [("Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64) \n\tx",)]}))
    result = connector().test()
    assert result.server_version == "Microsoft SQL Server 2022 (RTM) 16.0.1000.6"
    assert result.latency_ms >= 0
    assert fake.calls == [("SELECT @@VERSION", ())]
    assert fake.databases == ["Sales"] and all(c.closed for c in fake.connections)


def test_list_databases_and_fallback_without_master_files(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake(monkeypatch, dispatch({"sys.master_files": [("Sales", 16777216), ("Hidden", None)]}))
    dbs = connector().list_databases()
    assert [(d.name, d.size_bytes) for d in dbs] == [("Sales", 16777216), ("Hidden", None)]
    sql = fake.calls[0][0]
    assert "state_desc = 'ONLINE'" in sql and "N'master', N'tempdb', N'model', N'msdb'" in sql

    azure = pyodbc.ProgrammingError("42S02", "[42S02] [SQL Server]Invalid object name 'sys.master_files'. (208)")
    fake = Fake(monkeypatch, dispatch({"sys.master_files": azure, "sys.databases": [("Sales", None)]}))
    assert [d.name for d in connector().list_databases()] == ["Sales"]
    assert len(fake.calls) == 2


def test_list_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake(monkeypatch, dispatch({"sys.schemas": [("dbo", 3), ("sales", 0)]}))
    schemas = connector().list_schemas("Other")
    assert [(s.name, s.table_count) for s in schemas] == [("dbo", 3), ("sales", 0)]
    sql = fake.calls[0][0]
    for system in ("N'sys'", "N'INFORMATION_SCHEMA'", "N'guest'", "N'db_owner'", "N'db_datareader'"):
        assert system in sql
    assert fake.databases == ["Other"]  # always against the database the user picked


def test_list_tables_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [("Order", 1200, 65536, 1), ("we]ird", 0, 0, 0)]
    fake = Fake(monkeypatch, dispatch({"sys.dm_db_partition_stats": rows}))
    tables = connector().list_tables("Shop", "dbo")
    assert tables == [
        TableInfo(schema="dbo", name="Order", row_count=1200, size_bytes=65536, has_primary_key=True),
        TableInfo(schema="dbo", name="we]ird", row_count=0, size_bytes=0, has_primary_key=False),
    ]
    sql, params = fake.calls[0]
    assert params == ("dbo",) and "s.name = ?" in sql
    assert "index_id IN (0, 1)" in sql and "reserved_page_count" in sql and "* 8192" in sql
    assert "is_primary_key = 1" in sql
    assert len(fake.calls) == 1 and fake.databases == ["Shop"]


def test_list_tables_exact_uses_one_union_all_query(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [("Order", 1200, 65536, 1), ("we]ird", 7, 8192, 0)]
    fake = Fake(monkeypatch, dispatch({"COUNT_BIG": [(1, 9), (0, 1234)], "sys.dm_db_partition_stats": rows}))
    tables = connector().list_tables("Shop", "my schema", exact=True)
    assert [(t.name, t.row_count, t.row_count_exact) for t in tables] == [
        ("Order", 1234, True),
        ("we]ird", 9, True),
    ]
    counts = fake.sql_containing("COUNT_BIG")
    assert len(counts) == 1
    assert counts[0][0] == (
        "SELECT 0 AS i, COUNT_BIG(*) AS n FROM [my schema].[Order]\nUNION ALL\n"
        "SELECT 1 AS i, COUNT_BIG(*) AS n FROM [my schema].[we]]ird]"
    )


def test_list_tables_falls_back_to_catalog_views_without_view_database_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    denied = pyodbc.ProgrammingError(
        "42000", "[42000] [SQL Server]VIEW DATABASE STATE permission denied in database 'Shop'. (297)"
    )
    fake = Fake(monkeypatch, dispatch({"sys.dm_db_partition_stats": denied, "sys.partitions": [("T", 5, 16384, 1)]}))
    tables = connector().list_tables("Shop", "dbo")
    assert [(t.name, t.row_count, t.size_bytes) for t in tables] == [("T", 5, 16384)]
    assert "sys.allocation_units" in fake.calls[1][0]


def test_list_tables_of_missing_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    Fake(monkeypatch, dispatch({"sys.dm_db_partition_stats": [], "FROM sys.schemas": []}))
    with pytest.raises(ObjectNotFound, match="schema nope does not exist in database Shop"):
        connector().list_tables("Shop", "nope")
    Fake(monkeypatch, dispatch({"sys.dm_db_partition_stats": [], "FROM sys.schemas": [(5,)]}))
    assert connector().list_tables("Shop", "empty") == []


def test_count_rows_quotes_identifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake(monkeypatch, dispatch({"AND t.name = ?": [(42,)], "COUNT_BIG": [(0, 77)]}))
    assert connector().count_rows("Shop", "dbo", "we]ird") == 77
    assert fake.calls[0][1] == ("dbo", "we]ird")
    assert fake.calls[1] == ("SELECT 0 AS i, COUNT_BIG(*) AS n FROM [dbo].[we]]ird]", ())


def test_count_rows_of_missing_table(monkeypatch: pytest.MonkeyPatch) -> None:
    Fake(monkeypatch, dispatch({"AND t.name = ?": []}))
    with pytest.raises(ObjectNotFound, match=r"table dbo.Order does not exist in database Shop"):
        connector().count_rows("Shop", "dbo", "Order")


def test_driver_errors_inside_a_session_are_translated_and_the_connection_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone = pyodbc.ProgrammingError(
        "42S02",
        "[42S02] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Invalid object name 'dbo.x'. (208)",
    )
    fake = Fake(monkeypatch, dispatch({"AND t.name = ?": [(1,)], "COUNT_BIG": gone}))
    with pytest.raises(ObjectNotFound, match="Invalid object name 'dbo.x'"):
        connector().count_rows("Shop", "dbo", "x")
    assert fake.connections[0].closed


ORDER_FK_ROWS = [
    # name, schema, table, column, referenced schema, referenced table, referenced column
    ("FK_Order_Customer", "dbo", "Order", "CustomerRegion", "dbo", "Customer", "Region"),
    ("FK_Order_Customer", "dbo", "Order", "CustomerNo", "dbo", "Customer", "No"),
]
LINE_FK_ROWS = [("FK_Line_Order", "dbo", "OrderLine", "OrderId", "dbo", "Order", "Id")]


def test_table_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [
        ("Id", "int", 4, 10, 0, 0, None, 1),
        ("Note", "nvarchar", 200, 0, 0, 1, "(N'')", 2),
        ("Total", "decimal", 9, 18, 2, 0, "((0))", 3),
        ("At", "datetime2", 8, 27, 3, 0, "(sysutcdatetime())", 4),
        ("CustomerRegion", "char", 2, 0, 0, 0, None, 5),
        ("CustomerNo", "int", 4, 10, 0, 0, None, 6),
    ]
    indexes = [
        ("PK_Order", True, True, "Id"),
        ("IX_Order_Customer", False, False, "CustomerRegion"),
        ("IX_Order_Customer", False, False, "CustomerNo"),
        ("UX_Order_Note", True, False, "Note"),
    ]
    fake = Fake(
        monkeypatch,
        dispatch(
            {
                "AND t.name = ?": [(42,)],
                "FROM sys.columns AS c": columns,
                "FROM sys.indexes AS i": indexes,
                "fk.parent_object_id = ?": ORDER_FK_ROWS,
                "fk.referenced_object_id = ?": LINE_FK_ROWS,
                "sys.dm_db_partition_stats": [(1200, 65536)],
            }
        ),
    )
    detail = connector().table_detail("Shop", "dbo", "Order")

    assert detail.schema == "dbo" and detail.name == "Order"
    assert detail.columns[:4] == [
        ColumnInfo(name="Id", type="int", nullable=False, default=None, position=1),
        ColumnInfo(name="Note", type="nvarchar(100)", nullable=True, default="N''", position=2),
        ColumnInfo(name="Total", type="decimal(18,2)", nullable=False, default="0", position=3),
        ColumnInfo(name="At", type="datetime2(3)", nullable=False, default="sysutcdatetime()", position=4),
    ]
    assert detail.primary_key == ["Id"]
    assert detail.indexes == [
        IndexInfo(name="PK_Order", columns=["Id"], unique=True, primary=True),
        IndexInfo(name="IX_Order_Customer", columns=["CustomerRegion", "CustomerNo"], unique=False),
        IndexInfo(name="UX_Order_Note", columns=["Note"], unique=True),
    ]
    assert detail.foreign_keys == [
        ForeignKeyInfo(
            name="FK_Order_Customer",
            schema="dbo",
            table="Order",
            columns=["CustomerRegion", "CustomerNo"],
            referenced_schema="dbo",
            referenced_table="Customer",
            referenced_columns=["Region", "No"],
        ),
    ]
    assert detail.referenced_by == [
        ForeignKeyInfo(
            name="FK_Line_Order",
            schema="dbo",
            table="OrderLine",
            columns=["OrderId"],
            referenced_schema="dbo",
            referenced_table="Order",
            referenced_columns=["Id"],
        ),
    ]
    assert (detail.row_count, detail.size_bytes) == (1200, 65536)

    lookup_sql, lookup_params = fake.calls[0]
    assert lookup_params == ("dbo", "Order") and "s.name = ? AND t.name = ?" in lookup_sql
    by_id = [params for sql, params in fake.calls[1:]]
    assert all(p == (42,) for p in by_id)
    column_sql = fake.sql_containing("FROM sys.columns AS c")[0][0]
    assert "sys.default_constraints" in column_sql and "ORDER BY c.column_id" in column_sql
    index_sql = fake.sql_containing("FROM sys.indexes AS i")[0][0]
    assert "ic.key_ordinal" in index_sql and "is_included_column = 0" in index_sql
    fk_sql = fake.sql_containing("fk.parent_object_id = ?")[0][0]
    assert "fkc.constraint_column_id" in fk_sql
    assert len(fake.connections) == 1 and fake.connections[0].closed


def test_table_detail_of_missing_table(monkeypatch: pytest.MonkeyPatch) -> None:
    Fake(monkeypatch, dispatch({"AND t.name = ?": []}))
    with pytest.raises(ObjectNotFound, match="table dbo.Nope does not exist in database Shop"):
        connector().table_detail("Shop", "dbo", "Nope")


def test_foreign_keys_of_a_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Fake(monkeypatch, dispatch({"FROM sys.foreign_keys": ORDER_FK_ROWS + LINE_FK_ROWS}))
    fks = connector().foreign_keys("Shop", "dbo")
    assert [(fk.name, fk.columns, fk.referenced_columns) for fk in fks] == [
        ("FK_Order_Customer", ["CustomerRegion", "CustomerNo"], ["Region", "No"]),
        ("FK_Line_Order", ["OrderId"], ["Id"]),
    ]
    sql, params = fake.calls[0]
    assert params == ("dbo",) and "WHERE ps.name = ?" in sql


def test_dependencies_from_foreign_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = (
        ORDER_FK_ROWS
        + LINE_FK_ROWS
        + [
            ("FK_Self", "dbo", "Customer", "ParentNo", "dbo", "Customer", "No"),
            ("FK_Other", "dbo", "Order", "Cur", "ref", "Currency", "Code"),  # another schema: ignored
        ]
    )
    Fake(monkeypatch, dispatch({"FROM sys.foreign_keys": rows}))
    deps = connector().dependencies("Shop", "dbo", ["OrderLine", "Order", "Customer"])
    assert deps.order == ["Customer", "Order", "OrderLine"]
    assert deps.levels == [["Customer"], ["Order"], ["OrderLine"]]
    assert deps.cycles == []
    assert {"table": "Order", "references": "Customer", "constraint": "FK_Order_Customer"} in deps.edges
