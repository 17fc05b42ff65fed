"""Debezium connector configs built from a pipeline, and Kafka client settings from the app settings.

The app does its own full load, so source connectors never snapshot data (`snapshot.mode=no_data`):
on PostgreSQL the connector streams from the replication slot the app created with its exported
snapshot; on SQL Server it streams from the CDC position current when it starts. Change events
are plain JSON (no embedded schemas) for the app's own consumer; a JDBC sink needs schemas, so
pass `with_schemas=True` to the source config when the sink runs in Kafka Connect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.cdc.pg_source import publication_name, slot_name
from core.connectors.base import ConnectionSpec
from core.errors import ValidationFailed
from core.security import instance_tag

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
SQLSERVER_CONNECTOR = "io.debezium.connector.sqlserver.SqlServerConnector"
DEBEZIUM_JDBC_SINK = "io.debezium.connector.jdbc.JdbcSinkConnector"
CONFLUENT_JDBC_SINK = "io.confluent.connect.jdbc.JdbcSinkConnector"
JDBC_SINKS = (DEBEZIUM_JDBC_SINK, CONFLUENT_JDBC_SINK)
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"

_TOPIC_CHAR = re.compile(r"[^A-Za-z0-9._-]")
# Characters with a meaning in a Java regex; everything else stands for itself.
_REGEX_SPECIAL = set("\\.[]{}()*+?^$|")
_PG_SSL_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
_TRUE = {"yes", "true", "1", "mandatory", "on"}
_FALSE = {"no", "false", "0", "optional", "off"}


# -- names ------------------------------------------------------------------------------------


def _tag(instance: str | None) -> str:
    if instance is None:
        instance = instance_tag()
    return instance


def connector_name(pipeline_id: int, instance: str | None = None) -> str:
    """The source connector of a pipeline on the Kafka Connect cluster (`instance`: this installation's tag)."""
    return f"cdc-studio-{_tag(instance)}-p{int(pipeline_id)}"


def sink_connector_name(pipeline_id: int, instance: str | None = None) -> str:
    """The JDBC sink connector of a pipeline (sink mode `connect`)."""
    return f"{connector_name(pipeline_id, instance)}-sink"


def topic_prefix(pipeline_id: int, instance: str | None = None) -> str:
    """Debezium's `topic.prefix` for a pipeline (only characters valid in topic names)."""
    return f"cdcstudio_{_tag(instance)}_p{int(pipeline_id)}"


def parse_connector_name(name: str, instance: str | None = None) -> int | None:
    """The pipeline id of one of this installation's connectors (None for anything else)."""
    m = re.fullmatch(rf"cdc-studio-{re.escape(_tag(instance))}-p(\d+)", name)
    return int(m.group(1)) if m else None


def sanitize_topic_part(part: str) -> str:
    """A name as Debezium puts it in a topic: characters Kafka does not allow become '_'."""
    return _TOPIC_CHAR.sub("_", part)


def table_topic(pipeline_id: int, kind: str, schema: str, table: str, database: str | None = None) -> str:
    """The change topic of a table: `<prefix>.<schema>.<table>` (PostgreSQL),
    `<prefix>.<database>.<schema>.<table>` (SQL Server)."""
    parts = [topic_prefix(pipeline_id)]
    if kind == "sqlserver":
        if not database:
            raise ValidationFailed("database", "SQL Server change topics include the database name")
        parts.append(database)
    elif kind != "postgresql":
        raise ValidationFailed("kind", f"no Debezium source for '{kind}' (supported: postgresql, sqlserver)")
    parts += [schema, table]
    return ".".join(sanitize_topic_part(p) for p in parts)


def topic_name(pipeline_id: int, schema: str, table: str, database: str | None = None) -> str:
    """The change topic of a table: PostgreSQL form, or SQL Server form when `database` is given."""
    if database:
        return table_topic(pipeline_id, "sqlserver", schema, table, database)
    return table_topic(pipeline_id, "postgresql", schema, table)


def schema_history_topic(pipeline_id: int) -> str:
    """The internal schema-history topic of a SQL Server source connector."""
    return f"{topic_prefix(pipeline_id)}.schema-history"


def regex_literal(text: str) -> str:
    """`text` as a Java regex matching exactly it; commas become `\\x2C` so Debezium's list split keeps them."""
    out = []
    for ch in text:
        if ch == ",":
            out.append(r"\x2C")
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def table_include_list(tables: Iterable[tuple[str, str]]) -> str:
    """Debezium's `table.include.list`: anchored regexes on `schema.table`, one per chosen table."""
    entries = [f"^{regex_literal(schema)}\\.{regex_literal(table)}$" for schema, table in tables]
    if not entries:
        raise ValidationFailed("tables", "choose at least one table to capture")
    return ",".join(dict.fromkeys(entries))


# -- source connectors ------------------------------------------------------------------------


def _converters(with_schemas: bool) -> dict[str, str]:
    enabled = "true" if with_schemas else "false"
    return {
        "key.converter": JSON_CONVERTER,
        "key.converter.schemas.enable": enabled,
        "value.converter": JSON_CONVERTER,
        "value.converter.schemas.enable": enabled,
    }


def _merge(config: dict[str, str], extra: Mapping[str, Any] | None) -> dict[str, str]:
    for key, value in (extra or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return config


def _option(options: Mapping[str, str], name: str) -> str | None:
    """A connection option by case-insensitive name."""
    for key, value in options.items():
        if key.lower() == name.lower():
            return str(value)
    return None


def postgres_source_config(
    pipeline_id: int,
    spec: ConnectionSpec,
    tables: Sequence[tuple[str, str]],
    *,
    slot: str | None = None,
    publication: str | None = None,
    heartbeat_ms: int = 10000,
    with_schemas: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The Debezium PostgreSQL connector config streaming `tables` from the pipeline's slot."""
    config = {
        "connector.class": POSTGRES_CONNECTOR,
        "tasks.max": "1",
        "database.hostname": spec.host,
        "database.port": str(spec.port or 5432),
        "database.user": spec.username,
        "database.password": spec.password,
        "database.dbname": spec.database,
        "plugin.name": "pgoutput",
        "slot.name": slot or slot_name(pipeline_id),
        "publication.name": publication or publication_name(pipeline_id),
        "publication.autocreate.mode": "filtered",
        "table.include.list": table_include_list(tables),
        "topic.prefix": topic_prefix(pipeline_id),
        "snapshot.mode": "no_data",
        "decimal.handling.mode": "string",
        "time.precision.mode": "adaptive_time_microseconds",
        "binary.handling.mode": "hex",
        "interval.handling.mode": "string",
        "hstore.handling.mode": "json",
        "heartbeat.interval.ms": str(int(heartbeat_ms)),
        "tombstones.on.delete": "true",
        **_converters(with_schemas),
    }
    for name in _PG_SSL_OPTIONS:
        value = _option(spec.options, name)
        if value:
            config[f"database.{name}"] = value
    return _merge(config, extra)


def _bool_option(options: Mapping[str, str], name: str) -> str | None:
    """An ODBC-style yes/no option as the JDBC driver's true/false (`strict` passes through)."""
    value = _option(options, name)
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return "true"
    if lowered in _FALSE:
        return "false"
    if lowered == "strict":
        return "strict"
    raise ValidationFailed("options", f"{name}={value} is not yes/no")


def sqlserver_source_config(
    pipeline_id: int,
    spec: ConnectionSpec,
    tables: Sequence[tuple[str, str]],
    *,
    bootstrap_servers: str,
    history_topic: str | None = None,
    heartbeat_ms: int = 10000,
    history_client: Mapping[str, str] | None = None,
    with_schemas: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The Debezium SQL Server connector config streaming `tables` of `spec.database` from CDC.

    `history_client` (see `java_client_security`) is applied to the schema-history producer and
    consumer, which talk to Kafka directly rather than through the worker's own clients.
    """
    if not spec.database:
        raise ValidationFailed("database", "choose the SQL Server database to capture")
    if not bootstrap_servers:
        raise ValidationFailed("KAFKA_BOOTSTRAP_SERVERS", "the SQL Server connector needs Kafka for its schema history")
    config = {
        "connector.class": SQLSERVER_CONNECTOR,
        "tasks.max": "1",
        "database.hostname": spec.host,
        "database.port": str(spec.port or 1433),
        "database.user": spec.username,
        "database.password": spec.password,
        "database.names": spec.database,
        "table.include.list": table_include_list(tables),
        "topic.prefix": topic_prefix(pipeline_id),
        "schema.history.internal.kafka.bootstrap.servers": bootstrap_servers,
        "schema.history.internal.kafka.topic": history_topic or schema_history_topic(pipeline_id),
        # Schema of the captured tables only, no rows; then stream from the current CDC position.
        "snapshot.mode": "no_data",
        "decimal.handling.mode": "string",
        # SQL Server supports only adaptive|connect; adaptive keeps datetime2's 100ns precision.
        "time.precision.mode": "adaptive",
        "binary.handling.mode": "hex",
        "heartbeat.interval.ms": str(int(heartbeat_ms)),
        "tombstones.on.delete": "true",
        **_converters(with_schemas),
    }
    for option, key in (("Encrypt", "database.encrypt"), ("TrustServerCertificate", "database.trustServerCertificate")):
        value = _bool_option(spec.options, option)
        if value is not None:
            config[key] = value
    for key, value in (history_client or {}).items():
        config[f"schema.history.internal.producer.{key}"] = value
        config[f"schema.history.internal.consumer.{key}"] = value
    return _merge(config, extra)


# -- sink connector ---------------------------------------------------------------------------


def jdbc_url(spec: ConnectionSpec) -> str:
    """The JDBC URL of a target database."""
    if spec.kind == "postgresql":
        url = f"jdbc:postgresql://{spec.host}:{spec.port or 5432}/{spec.database}"
        sslmode = _option(spec.options, "sslmode")
        return f"{url}?sslmode={sslmode}" if sslmode else url
    if spec.kind == "sqlserver":
        parts = [f"jdbc:sqlserver://{spec.host}:{spec.port or 1433}", f"databaseName={spec.database}"]
        for option, key in (("Encrypt", "encrypt"), ("TrustServerCertificate", "trustServerCertificate")):
            value = _bool_option(spec.options, option)
            if value is not None:
                parts.append(f"{key}={value}")
        return ";".join(parts)
    raise ValidationFailed("target", f"no JDBC URL for database kind '{spec.kind}'")


def _plugin_classes(plugins: Iterable[Any]) -> list[str]:
    """Class names from `PluginInfo`s, Connect's plugin dicts, or plain strings."""
    out = []
    for p in plugins:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, Mapping):
            out.append(str(p.get("class", "")))
        else:
            out.append(str(getattr(p, "class_name", "")))
    return out


def jdbc_sink_config(
    pipeline_id: int, target: ConnectionSpec, topics: Sequence[str], plugins: Iterable[Any]
) -> dict[str, str]:
    """A JDBC sink connector config writing `topics` into `target` (sink mode `connect`).

    Prefers the Debezium JDBC sink (reads Debezium change events natively); falls back to the
    Confluent one with the unwrap transform. Both need schema-ful JSON: build the source config
    with `with_schemas=True`.
    """
    found = _plugin_classes(plugins)
    if not topics:
        raise ValidationFailed("topics", "the sink has no topics to read")
    common = {
        "tasks.max": "1",
        "topics": ",".join(topics),
        "connection.url": jdbc_url(target),
        "connection.password": target.password,
        "insert.mode": "upsert",
        "delete.enabled": "true",
        **_converters(True),
    }
    if DEBEZIUM_JDBC_SINK in found:
        return {
            "connector.class": DEBEZIUM_JDBC_SINK,
            **common,
            "connection.username": target.username,
            "primary.key.mode": "record_key",
            "schema.evolution": "basic",
            "collection.name.format": "${source.schema}.${source.table}",
        }
    if CONFLUENT_JDBC_SINK in found:
        return {
            "connector.class": CONFLUENT_JDBC_SINK,
            **common,
            "connection.user": target.username,
            "pk.mode": "record_key",
            "auto.create": "true",
            "auto.evolve": "true",
            # The Confluent sink wants flat rows: unwrap Debezium's envelope, keep deletes as tombstones.
            "transforms": "unwrap,route",
            "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
            "transforms.unwrap.drop.tombstones": "false",
            "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.route.regex": r"[^.]+\.(?:[^.]+\.)?([^.]+)\.([^.]+)",
            "transforms.route.replacement": "$1.$2",
            "table.name.format": "${topic}",
        }
    listed = ", ".join(sorted(c for c in found if c)) or "none"
    raise ValidationFailed(
        "sink",
        f"the Kafka Connect cluster has no JDBC sink connector plugin (needs {DEBEZIUM_JDBC_SINK} or "
        f"{CONFLUENT_JDBC_SINK}); installed connector plugins: {listed}",
    )


# -- Kafka client settings --------------------------------------------------------------------


def _secret(value: Any) -> str | None:
    if value is not None and hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    return str(value) if value not in (None, "") else None


def kafka_client_settings(settings: Any) -> dict[str, str]:
    """confluent-kafka (librdkafka) config for the app's consumer, from the app settings."""
    bootstrap = getattr(settings, "kafka_bootstrap_servers", None)
    if not bootstrap:
        raise ValidationFailed("KAFKA_BOOTSTRAP_SERVERS", "is not set: the kafka_connect CDC engine needs it")
    config = {"bootstrap.servers": str(bootstrap)}
    protocol = getattr(settings, "kafka_security_protocol", None)
    mechanism = getattr(settings, "kafka_sasl_mechanism", None)
    username = getattr(settings, "kafka_sasl_username", None)
    password = _secret(getattr(settings, "kafka_sasl_password", None))
    ca = getattr(settings, "kafka_ssl_ca_location", None)
    if protocol:
        config["security.protocol"] = str(protocol).upper()
    if mechanism:
        config["sasl.mechanism"] = str(mechanism).upper()
    if username:
        config["sasl.username"] = str(username)
    if password:
        config["sasl.password"] = password
    if ca:
        config["ssl.ca.location"] = str(ca)
    return config


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def java_client_security(settings: Any) -> dict[str, str]:
    """Kafka Java client security settings (for Debezium's schema-history clients), from the app settings.

    Trust stores live on the Connect workers, so no CA path is passed; the workers' own client
    config must trust the brokers.
    """
    out: dict[str, str] = {}
    protocol = getattr(settings, "kafka_security_protocol", None)
    mechanism = str(getattr(settings, "kafka_sasl_mechanism", None) or "").upper()
    username = getattr(settings, "kafka_sasl_username", None)
    password = _secret(getattr(settings, "kafka_sasl_password", None)) or ""
    if protocol:
        out["security.protocol"] = str(protocol).upper()
    if mechanism:
        out["sasl.mechanism"] = mechanism
    if username and mechanism:
        module = (
            "org.apache.kafka.common.security.scram.ScramLoginModule"
            if mechanism.startswith("SCRAM")
            else "org.apache.kafka.common.security.plain.PlainLoginModule"
        )
        out["sasl.jaas.config"] = (
            f"{module} required username={_jaas_quote(str(username))} password={_jaas_quote(password)};"
        )
    return out
