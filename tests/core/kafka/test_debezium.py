"""Debezium connector configs built from a pipeline, include-list escaping, JDBC sink, Kafka client settings."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from core.cdc.pg_source import publication_name, slot_name
from core.connectors.base import ConnectionSpec
from core.errors import ValidationFailed
from core.kafka.connect_client import PluginInfo
from core.kafka.debezium import (
    CONFLUENT_JDBC_SINK,
    DEBEZIUM_JDBC_SINK,
    connector_name,
    java_client_security,
    jdbc_sink_config,
    jdbc_url,
    kafka_client_settings,
    postgres_source_config,
    regex_literal,
    sqlserver_source_config,
    table_include_list,
    table_topic,
    topic_name,
    topic_prefix,
)

PG = ConnectionSpec(
    kind="postgresql",
    host="pg.local",
    port=5433,
    database="shop",
    username="cdc",
    password="pw",
    options={"sslmode": "require"},
)
MSSQL = ConnectionSpec(
    kind="sqlserver",
    host="mssql.local",
    port=1433,
    database="Sales",
    username="sa",
    password="Sa-pass1",
    options={"Encrypt": "yes", "TrustServerCertificate": "yes"},
)


@pytest.fixture(autouse=True)
def instance(monkeypatch: pytest.MonkeyPatch):
    """This installation's tag, as CDC_STUDIO_INSTANCE sets it (names of connectors and topics carry it)."""
    from core.config import get_settings

    monkeypatch.setenv("CDC_STUDIO_INSTANCE", "i1")
    get_settings.cache_clear()
    yield "i1"
    get_settings.cache_clear()


def test_names() -> None:
    assert connector_name(7) == "cdc-studio-i1-p7"
    assert topic_prefix(7) == "cdcstudio_i1_p7"
    assert table_topic(7, "postgresql", "public", "orders") == "cdcstudio_i1_p7.public.orders"
    assert table_topic(7, "sqlserver", "dbo", "Orders", database="Sales") == "cdcstudio_i1_p7.Sales.dbo.Orders"
    # Characters Kafka rejects in topic names are replaced the way Debezium does it.
    assert table_topic(7, "postgresql", "my schema", "ördérs") == "cdcstudio_i1_p7.my_schema._rd_rs"
    assert topic_name(7, "public", "orders") == "cdcstudio_i1_p7.public.orders"
    assert topic_name(7, "dbo", "Orders", database="Sales") == "cdcstudio_i1_p7.Sales.dbo.Orders"
    with pytest.raises(ValidationFailed):
        table_topic(7, "sqlserver", "dbo", "Orders")
    with pytest.raises(ValidationFailed):
        table_topic(7, "mysql", "a", "b")


def test_postgres_source_config() -> None:
    config = postgres_source_config(3, PG, [("public", "orders"), ("sales", "order.lines")])
    assert config == {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "database.hostname": "pg.local",
        "database.port": "5433",
        "database.user": "cdc",
        "database.password": "pw",
        "database.dbname": "shop",
        "database.sslmode": "require",
        "plugin.name": "pgoutput",
        "slot.name": slot_name(3),
        "publication.name": publication_name(3),
        "publication.autocreate.mode": "filtered",
        "table.include.list": r"^public\.orders$,^sales\.order\.lines$",
        "topic.prefix": "cdcstudio_i1_p3",
        "snapshot.mode": "no_data",
        "decimal.handling.mode": "string",
        "time.precision.mode": "adaptive_time_microseconds",
        "binary.handling.mode": "hex",
        "interval.handling.mode": "string",
        "hstore.handling.mode": "json",
        "heartbeat.interval.ms": "10000",
        "tombstones.on.delete": "true",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    }
    assert all(isinstance(v, str) for v in config.values())


def test_postgres_source_overrides_and_extra() -> None:
    config = postgres_source_config(
        3,
        PG,
        [("public", "t")],
        slot="my_slot",
        publication="my_pub",
        heartbeat_ms=2500,
        with_schemas=True,
        extra={"max.batch.size": 512, "database.sslmode": None, "provide.transaction.metadata": True},
    )
    assert config["slot.name"] == "my_slot" and config["publication.name"] == "my_pub"
    assert config["heartbeat.interval.ms"] == "2500"
    assert config["value.converter.schemas.enable"] == "true"
    assert config["max.batch.size"] == "512"
    assert config["provide.transaction.metadata"] == "true"
    assert "database.sslmode" not in config


def test_include_list_escapes_regex_characters_and_anchors() -> None:
    tables = [("public", "a.b"), ("s$x", "t(1)+"), ("odd", "comma,name"), ("public", "a.b")]
    value = table_include_list(tables)
    entries = value.split(",")
    assert entries == [r"^public\.a\.b$", r"^s\$x\.t\(1\)\+$", r"^odd\.comma\x2Cname$"]
    # The same regexes (Python and Java agree on these constructs) match exactly the intended names.
    assert re.fullmatch(entries[0], "public.a.b")
    assert not re.fullmatch(entries[0], "public.aXb")
    assert re.fullmatch(entries[1], "s$x.t(1)+")
    assert re.fullmatch(entries[2], "odd.comma,name")
    assert regex_literal("a\\b") == "a\\\\b"
    with pytest.raises(ValidationFailed):
        table_include_list([])


def test_sqlserver_source_config() -> None:
    config = sqlserver_source_config(4, MSSQL, [("dbo", "Orders")], bootstrap_servers="kafka:9092")
    assert config["connector.class"] == "io.debezium.connector.sqlserver.SqlServerConnector"
    assert config["database.hostname"] == "mssql.local"
    assert config["database.port"] == "1433"
    assert config["database.user"] == "sa"
    assert config["database.password"] == "Sa-pass1"
    assert config["database.names"] == "Sales"
    assert config["database.encrypt"] == "true"
    assert config["database.trustServerCertificate"] == "true"
    assert config["table.include.list"] == r"^dbo\.Orders$"
    assert config["topic.prefix"] == "cdcstudio_i1_p4"
    assert config["schema.history.internal.kafka.bootstrap.servers"] == "kafka:9092"
    assert config["schema.history.internal.kafka.topic"] == "cdcstudio_i1_p4.schema-history"
    assert config["snapshot.mode"] == "no_data"
    assert config["decimal.handling.mode"] == "string"
    assert config["time.precision.mode"] == "adaptive"
    assert config["binary.handling.mode"] == "hex"
    assert config["heartbeat.interval.ms"] == "10000"
    assert config["value.converter.schemas.enable"] == "false"
    assert "database.dbname" not in config and "slot.name" not in config


def test_sqlserver_history_topic_security_and_options() -> None:
    spec = ConnectionSpec(
        kind="sqlserver", host="h", port=0, database="D", username="u", password="p", options={"encrypt": "no"}
    )
    config = sqlserver_source_config(
        4,
        spec,
        [("dbo", "T")],
        bootstrap_servers="k:9093",
        history_topic="custom.history",
        history_client={"security.protocol": "SASL_SSL"},
    )
    assert config["database.port"] == "1433"
    assert config["database.encrypt"] == "false"
    assert "database.trustServerCertificate" not in config
    assert config["schema.history.internal.kafka.topic"] == "custom.history"
    assert config["schema.history.internal.producer.security.protocol"] == "SASL_SSL"
    assert config["schema.history.internal.consumer.security.protocol"] == "SASL_SSL"
    with pytest.raises(ValidationFailed):
        sqlserver_source_config(4, spec, [("dbo", "T")], bootstrap_servers="")


def test_jdbc_url() -> None:
    assert jdbc_url(PG) == "jdbc:postgresql://pg.local:5433/shop?sslmode=require"
    assert jdbc_url(MSSQL) == (
        "jdbc:sqlserver://mssql.local:1433;databaseName=Sales;encrypt=true;trustServerCertificate=true"
    )


def test_jdbc_sink_refused_without_plugin_names_what_was_found() -> None:
    plugins = [PluginInfo("io.debezium.connector.postgresql.PostgresConnector", "source", "3.0")]
    with pytest.raises(ValidationFailed) as info:
        jdbc_sink_config(1, PG, ["cdcstudio_i1_p1.public.a"], plugins)
    assert info.value.field == "sink"
    assert "io.debezium.connector.postgresql.PostgresConnector" in info.value.message
    assert DEBEZIUM_JDBC_SINK in info.value.message


def test_jdbc_sink_debezium() -> None:
    plugins = [PluginInfo(DEBEZIUM_JDBC_SINK, "sink"), PluginInfo(CONFLUENT_JDBC_SINK, "sink")]
    config = jdbc_sink_config(1, PG, ["cdcstudio_i1_p1.public.a", "cdcstudio_i1_p1.public.b"], plugins)
    assert config["connector.class"] == DEBEZIUM_JDBC_SINK
    assert config["topics"] == "cdcstudio_i1_p1.public.a,cdcstudio_i1_p1.public.b"
    assert config["connection.url"] == "jdbc:postgresql://pg.local:5433/shop?sslmode=require"
    assert config["connection.username"] == "cdc" and config["connection.password"] == "pw"
    assert config["insert.mode"] == "upsert"
    assert config["primary.key.mode"] == "record_key"
    assert config["delete.enabled"] == "true"
    assert config["schema.evolution"] == "basic"
    assert config["value.converter.schemas.enable"] == "true"


def test_jdbc_sink_confluent_fallback_accepts_plain_class_names() -> None:
    config = jdbc_sink_config(1, MSSQL, ["cdcstudio_i1_p1.Sales.dbo.T"], [CONFLUENT_JDBC_SINK])
    assert config["connector.class"] == CONFLUENT_JDBC_SINK
    assert config["pk.mode"] == "record_key" and config["insert.mode"] == "upsert"
    assert config["connection.user"] == "sa"
    pattern, replacement = config["transforms.route.regex"], config["transforms.route.replacement"]
    as_python = replacement.replace("$", "\\")
    assert re.sub(f"^{pattern}$", as_python, "cdcstudio_i1_p1.Sales.dbo.T") == "dbo.T"
    assert re.sub(f"^{pattern}$", as_python, "cdcstudio_i1_p1.public.orders") == "public.orders"


def test_kafka_client_settings() -> None:
    plain = SimpleNamespace(kafka_bootstrap_servers="k1:9092,k2:9092")
    assert kafka_client_settings(plain) == {"bootstrap.servers": "k1:9092,k2:9092"}
    secure = SimpleNamespace(
        kafka_bootstrap_servers="k:9093",
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="app",
        kafka_sasl_password=SecretStr('pa"ss'),
        kafka_ssl_ca_location="/etc/ca.pem",
    )
    assert kafka_client_settings(secure) == {
        "bootstrap.servers": "k:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "app",
        "sasl.password": 'pa"ss',
        "ssl.ca.location": "/etc/ca.pem",
    }
    java = java_client_security(secure)
    assert java["security.protocol"] == "SASL_SSL"
    assert java["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="app" password="pa\\"ss";'
    )
    with pytest.raises(ValidationFailed):
        kafka_client_settings(SimpleNamespace(kafka_bootstrap_servers=None))
