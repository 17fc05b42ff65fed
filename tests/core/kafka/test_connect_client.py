"""KafkaConnectClient against a scripted Connect REST API (httpx.MockTransport): requests and error translation."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from core.errors import Conflict, ConnectionRefused, ConnectorError, ConnectTimeout, NotFound, UnknownHost
from core.kafka.connect_client import (
    CONNECTOR_STATES,
    ConnectConflict,
    ConnectNotFound,
    KafkaConnectClient,
    KafkaConnectError,
    PluginInfo,
    mask_config,
    mask_text,
)

URL = "http://connect.example:8083"
Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


class FakeConnect:
    """Records every request and answers from a queue (the last answer repeats)."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [httpx.Response(200, json={})]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return reply(request) if callable(reply) else reply

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def client_for(fake: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> KafkaConnectClient:
    kwargs.setdefault("backoff_s", 0)
    return KafkaConnectClient(URL, transport=httpx.MockTransport(fake), **kwargs)


def error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error_code": status, "message": message})


def query(request: httpx.Request) -> list[tuple[str, str]]:
    return list(request.url.params.multi_items())


# -- requests ---------------------------------------------------------------------------------


def test_server_info() -> None:
    fake = FakeConnect(httpx.Response(200, json={"version": "3.9.0", "commit": "abc", "kafka_cluster_id": "K1"}))
    with client_for(fake) as c:
        info = c.server_info()
    assert info["version"] == "3.9.0" and info["kafka_cluster_id"] == "K1"
    assert (fake.last.method, fake.last.url.path) == ("GET", "/")
    assert str(fake.last.url).startswith(URL)


def test_plugins_parses_class_type_version_and_passes_connectors_only() -> None:
    fake = FakeConnect(
        httpx.Response(
            200,
            json=[
                {"class": "io.debezium.connector.postgresql.PostgresConnector", "type": "source", "version": "3.0.1"},
                {"class": "io.debezium.connector.jdbc.JdbcSinkConnector", "type": "sink", "version": "3.0.1"},
            ],
        )
    )
    c = client_for(fake)
    plugins = c.plugins()
    assert plugins == [
        PluginInfo("io.debezium.connector.postgresql.PostgresConnector", "source", "3.0.1"),
        PluginInfo("io.debezium.connector.jdbc.JdbcSinkConnector", "sink", "3.0.1"),
    ]
    assert plugins[0].short_name == "PostgresConnector"
    assert fake.last.url.path == "/connector-plugins"
    assert query(fake.last) == [("connectorsOnly", "true")]
    c.plugins(connectors_only=False)
    assert query(fake.last) == [("connectorsOnly", "false")]


def test_connectors_expanded_with_status_and_info() -> None:
    fake = FakeConnect(
        httpx.Response(
            200,
            json={
                "cdc-studio-p1": {
                    "info": {"name": "cdc-studio-p1", "config": {"tasks.max": "1"}, "tasks": [], "type": "source"},
                    "status": {
                        "name": "cdc-studio-p1",
                        "connector": {"state": "RUNNING", "worker_id": "w1:8083"},
                        "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "w1:8083"}],
                        "type": "source",
                    },
                }
            },
        )
    )
    found = client_for(fake).connectors()
    assert query(fake.last) == [("expand", "status"), ("expand", "info")]
    assert fake.last.url.path == "/connectors"
    info = found["cdc-studio-p1"]
    assert info.config == {"tasks.max": "1"}
    assert info.type == "source"
    assert info.status is not None and info.status.state == "RUNNING" and info.status.healthy


def test_connector_and_config_get() -> None:
    fake = FakeConnect(
        httpx.Response(200, json={"name": "a", "config": {"x": "1"}, "tasks": [], "type": "source"}),
        httpx.Response(200, json={"x": "1", "name": "a"}),
    )
    c = client_for(fake)
    assert c.connector("a")["type"] == "source"
    assert (fake.last.method, fake.last.url.path) == ("GET", "/connectors/a")
    assert c.config("a") == {"x": "1", "name": "a"}
    assert fake.last.url.path == "/connectors/a/config"


def test_create_posts_name_and_string_config() -> None:
    fake = FakeConnect(httpx.Response(201, json={"name": "p1", "config": {}, "tasks": []}))
    client_for(fake).create("p1", {"tasks.max": 1, "tombstones.on.delete": True, "skip": None})
    assert (fake.last.method, fake.last.url.path) == ("POST", "/connectors")
    assert fake.body() == {"name": "p1", "config": {"tasks.max": "1", "tombstones.on.delete": "true"}}
    assert fake.last.headers["content-type"] == "application/json"


def test_put_config_url_encodes_the_name() -> None:
    fake = FakeConnect(httpx.Response(200, json={"name": "a/b c", "config": {}}))
    client_for(fake).put_config("a/b c", {"k": "v"})
    assert fake.last.method == "PUT"
    assert fake.last.url.raw_path == b"/connectors/a%2Fb%20c/config"
    assert fake.body() == {"k": "v"}


def test_validate_collects_per_field_errors_and_adds_connector_class() -> None:
    answer = {
        "name": "io.debezium.connector.postgresql.PostgresConnector",
        "error_count": 2,
        "groups": [],
        "configs": [
            {"definition": {"name": "database.hostname"}, "value": {"name": "database.hostname", "errors": []}},
            {
                "definition": {"name": "database.user"},
                "value": {"name": "database.user", "errors": ["Missing required configuration"]},
            },
            {
                "definition": {"name": "slot.name"},
                "value": {"name": "slot.name", "errors": ["Invalid value Bad-Slot", "must match [a-z0-9_]+"]},
            },
        ],
    }
    fake = FakeConnect(httpx.Response(200, json=answer))
    result = client_for(fake).validate("PostgresConnector", {"database.hostname": "db"})
    assert fake.last.method == "PUT"
    assert fake.last.url.path == "/connector-plugins/PostgresConnector/config/validate"
    assert fake.body() == {"database.hostname": "db", "connector.class": "PostgresConnector"}
    assert result.error_count == 2 and not result.ok
    assert result.errors == {
        "database.user": ["Missing required configuration"],
        "slot.name": ["Invalid value Bad-Slot", "must match [a-z0-9_]+"],
    }


def test_validate_masks_password_echoed_in_errors() -> None:
    answer = {
        "name": "x",
        "error_count": 1,
        "configs": [{"value": {"name": "database.password", "errors": ["Invalid value hunter22 for password"]}}],
    }
    fake = FakeConnect(httpx.Response(200, json=answer))
    result = client_for(fake).validate(
        "io.x.Connector", {"connector.class": "io.x.Connector", "database.password": "hunter22"}
    )
    assert fake.last.url.path == "/connector-plugins/io.x.Connector/config/validate"
    assert "hunter22" not in json.dumps(result.errors)
    assert result.errors["database.password"] == ["Invalid value **** for password"]


def test_status_parses_failed_task_with_trace() -> None:
    trace = "org.apache.kafka.connect.errors.ConnectException: boom\n\tat io.debezium..."
    fake = FakeConnect(
        httpx.Response(
            200,
            json={
                "name": "p1",
                "connector": {"state": "RUNNING", "worker_id": "10.0.0.1:8083"},
                "tasks": [
                    {"id": 1, "state": "RUNNING", "worker_id": "10.0.0.2:8083"},
                    {"id": 0, "state": "FAILED", "worker_id": "10.0.0.1:8083", "trace": trace},
                ],
                "type": "source",
            },
        )
    )
    st = client_for(fake).status("p1")
    assert fake.last.url.path == "/connectors/p1/status"
    assert (st.name, st.state, st.worker_id, st.type) == ("p1", "RUNNING", "10.0.0.1:8083", "source")
    assert [t.id for t in st.tasks] == [0, 1]
    assert st.tasks[0].state == "FAILED" and st.tasks[0].trace == trace
    assert st.tasks[1].trace is None
    assert st.failed_tasks == [st.tasks[0]]
    assert not st.healthy
    assert st.state in CONNECTOR_STATES


@pytest.mark.parametrize("op", ["pause", "resume", "stop"])
def test_lifecycle_puts(op: str) -> None:
    fake = FakeConnect(httpx.Response(202))
    assert getattr(client_for(fake), op)("p1") is None
    assert (fake.last.method, fake.last.url.path) == ("PUT", f"/connectors/p1/{op}")


def test_restart_flags_and_optional_status_body() -> None:
    fake = FakeConnect(
        httpx.Response(204),
        httpx.Response(
            202,
            json={
                "name": "p1",
                "connector": {"state": "RUNNING", "worker_id": "w"},
                "tasks": [{"id": 0, "state": "RESTARTING", "worker_id": "w"}],
            },
        ),
    )
    c = client_for(fake)
    assert c.restart("p1") is None
    assert (fake.last.method, fake.last.url.path) == ("POST", "/connectors/p1/restart")
    assert query(fake.last) == [("includeTasks", "false"), ("onlyFailed", "false")]
    st = c.restart("p1", include_tasks=True, only_failed=True)
    assert query(fake.last) == [("includeTasks", "true"), ("onlyFailed", "true")]
    assert st is not None and st.tasks[0].state == "RESTARTING"


def test_restart_task_delete_topics() -> None:
    fake = FakeConnect(
        httpx.Response(204),
        httpx.Response(204),
        httpx.Response(200, json={"p1": {"topics": ["cdcstudio_p1.public.a", "cdcstudio_p1.public.b"]}}),
        httpx.Response(200),
    )
    c = client_for(fake)
    c.restart_task("p1", 2)
    assert (fake.last.method, fake.last.url.path) == ("POST", "/connectors/p1/tasks/2/restart")
    c.delete("p1")
    assert (fake.last.method, fake.last.url.path) == ("DELETE", "/connectors/p1")
    assert c.topics("p1") == ["cdcstudio_p1.public.a", "cdcstudio_p1.public.b"]
    assert (fake.last.method, fake.last.url.path) == ("GET", "/connectors/p1/topics")
    c.reset_topics("p1")
    assert (fake.last.method, fake.last.url.path) == ("PUT", "/connectors/p1/topics/reset")


def test_offsets_get_patch_delete() -> None:
    offsets = [{"partition": {"server": "cdcstudio_p1"}, "offset": {"lsn": 123}}]
    fake = FakeConnect(
        httpx.Response(200, json={"offsets": offsets}),
        httpx.Response(200, json={"message": "The offsets for this connector have been altered successfully"}),
        httpx.Response(200, json={"message": "The offsets for this connector have been reset successfully"}),
    )
    c = client_for(fake)
    assert c.offsets("p1") == offsets
    assert (fake.last.method, fake.last.url.path) == ("GET", "/connectors/p1/offsets")
    c.alter_offsets("p1", offsets)
    assert (fake.last.method, fake.last.url.path) == ("PATCH", "/connectors/p1/offsets")
    assert fake.body() == {"offsets": offsets}
    c.reset_offsets("p1")
    assert (fake.last.method, fake.last.url.path) == ("DELETE", "/connectors/p1/offsets")


# -- HTTP errors ------------------------------------------------------------------------------


def test_400_carries_connects_message() -> None:
    msg = "Connector configuration is invalid and contains the following 1 error(s):\nMissing required configuration"
    fake = FakeConnect(error(400, msg))
    with pytest.raises(KafkaConnectError) as info:
        client_for(fake).put_config("p1", {"a": "b"})
    assert info.value.status_code == 400 and info.value.kind == "bad_request"
    assert "Missing required configuration" in str(info.value)
    assert isinstance(info.value, ConnectorError)


def test_404_is_not_found_naming_the_connector() -> None:
    fake = FakeConnect(error(404, "Connector p9 not found"))
    c = client_for(fake)
    with pytest.raises(NotFound) as info:
        c.delete("p9")
    assert isinstance(info.value, KafkaConnectError) and info.value.status_code == 404
    assert "connector 'p9' does not exist" in str(info.value)
    with pytest.raises(ConnectNotFound):
        c.status("p9")


def test_404_for_unknown_endpoint_is_unsupported_not_missing_connector() -> None:
    fake = FakeConnect(error(404, "HTTP 404 Not Found"))
    with pytest.raises(KafkaConnectError) as info:
        client_for(fake).stop("p1")
    assert info.value.kind == "unsupported"
    assert not isinstance(info.value, NotFound)
    assert "3.5" in str(info.value)


def test_404_without_body_on_root_asks_whether_the_url_is_connect() -> None:
    fake = FakeConnect(httpx.Response(404))
    with pytest.raises(KafkaConnectError) as info:
        client_for(fake).server_info()
    assert info.value.kind == "bad_response" and info.value.status_code == 404
    assert "is this the Kafka Connect REST URL?" in str(info.value)


def test_200_that_is_not_json_is_bad_response() -> None:
    fake = FakeConnect(httpx.Response(200, text="<html>login</html>"))
    with pytest.raises(KafkaConnectError) as info:
        client_for(fake).connectors()
    assert info.value.kind == "bad_response"


def test_409_rebalance_retried_then_success() -> None:
    rebalance = error(409, "Cannot complete request because of a conflicting operation (e.g. worker rebalance)")
    fake = FakeConnect(rebalance, rebalance, httpx.Response(201, json={"name": "p1", "config": {}}))
    assert client_for(fake, retries_on_rebalance=3).create("p1", {"a": "b"})["name"] == "p1"
    assert len(fake.requests) == 3


def test_409_rebalance_retried_then_conflict() -> None:
    stale = error(409, "Cannot complete request momentarily due to stale configuration (typically caused by ...)")
    fake = FakeConnect(stale)
    with pytest.raises(Conflict) as info:
        client_for(fake, retries_on_rebalance=2).put_config("p1", {"a": "b"})
    assert len(fake.requests) == 3  # the first try and two retries
    assert isinstance(info.value, KafkaConnectError) and info.value.kind == "rebalance"
    assert "stale configuration" in str(info.value)


def test_409_already_exists_is_conflict_without_retry() -> None:
    fake = FakeConnect(error(409, "Connector p1 already exists"))
    with pytest.raises(ConnectConflict) as info:
        client_for(fake).create("p1", {"a": "b"})
    assert len(fake.requests) == 1
    assert info.value.kind == "exists" and "already exists" in str(info.value)


def test_offsets_on_running_connector_say_stop_it_first() -> None:
    msg = (
        "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the "
        "specified connector by issuing a 'PUT' request to the '/connectors/p1/stop' endpoint"
    )
    fake = FakeConnect(error(400, msg))
    c = client_for(fake)
    for call in (lambda: c.reset_offsets("p1"), lambda: c.alter_offsets("p1", [])):
        with pytest.raises(Conflict) as info:
            call()
        assert isinstance(info.value, KafkaConnectError) and info.value.kind == "not_stopped"
        assert "connector 'p1' must be stopped" in str(info.value)


def test_500_is_kafka_connect_error_with_message() -> None:
    fake = FakeConnect(error(500, "Request timed out"))
    with pytest.raises(KafkaConnectError) as info:
        client_for(fake).connectors()
    assert info.value.status_code == 500 and info.value.kind == "server_error"
    assert "Request timed out" in str(info.value) and URL in str(info.value)


def test_non_json_error_body_is_quoted() -> None:
    fake = FakeConnect(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(KafkaConnectError) as info:
        client_for(fake).server_info()
    assert info.value.status_code == 502 and "Bad Gateway" in str(info.value)


def test_401_is_auth_failed() -> None:
    fake = FakeConnect(httpx.Response(401, text="Unauthorized"))
    with pytest.raises(KafkaConnectError) as info:
        client_for(fake, auth=("admin", "s3cret-pw")).server_info()
    assert info.value.kind == "auth_failed"
    assert fake.last.headers["authorization"].startswith("Basic ")


def test_password_never_in_error_text() -> None:
    msg = 'Failed to connect with {"database.password": "hunter22", "database.user": "cdc"} (password=hunter22)'
    fake = FakeConnect(error(500, msg))
    with pytest.raises(KafkaConnectError) as info:
        client_for(fake).put_config("p1", {"database.password": "hunter22", "database.user": "cdc"})
    text = str(info.value)
    assert "hunter22" not in text
    assert "database.user" in text and "****" in text


# -- transport errors -------------------------------------------------------------------------


def raising(exc_factory: Callable[[httpx.Request], Exception]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_factory(request)

    return handler


def test_refused() -> None:
    c = client_for(raising(lambda r: httpx.ConnectError("[Errno 111] Connection refused", request=r)))
    with pytest.raises(ConnectionRefused) as info:
        c.server_info()
    err = info.value
    assert isinstance(err, KafkaConnectError) and err.kind == "refused" and err.transient
    assert err.status_code is None
    assert f"is Kafka Connect running at {URL}?" in str(err)


def test_unknown_host() -> None:
    def fail(request: httpx.Request) -> Exception:
        exc = httpx.ConnectError("[Errno -2] Name or service not known", request=request)
        exc.__cause__ = socket.gaierror(-2, "Name or service not known")
        return exc

    with pytest.raises(UnknownHost) as info:
        client_for(raising(fail)).connectors()
    assert info.value.kind == "unknown_host"
    assert "connect.example" in str(info.value) and "is Kafka Connect running at" in str(info.value)


@pytest.mark.parametrize("exc_type", [httpx.ReadTimeout, httpx.ConnectTimeout])
def test_timeout(exc_type: type[httpx.TimeoutException]) -> None:
    c = client_for(raising(lambda r: exc_type("timed out", request=r)))
    with pytest.raises(ConnectTimeout) as info:
        c.status("p1")
    assert info.value.kind == "timeout" and info.value.transient
    assert f"is Kafka Connect running at {URL}?" in str(info.value)


def test_url_credentials_not_shown_and_scheme_defaulted() -> None:
    c = KafkaConnectClient(
        "user:pw123@connect.example:8083",
        transport=httpx.MockTransport(raising(lambda r: httpx.ConnectError("x", request=r))),
    )
    with pytest.raises(ConnectionRefused) as info:
        c.server_info()
    assert c.url == "http://connect.example:8083"
    assert "pw123" not in str(info.value)


# -- masking helpers --------------------------------------------------------------------------


def test_mask_config_and_text() -> None:
    config = {
        "database.password": "p1",
        "schema.history.internal.producer.sasl.jaas.config": 'PlainLoginModule required password="x";',
        "client.secret": "s",
        "database.user": "cdc",
    }
    masked = mask_config(config)
    assert masked == {
        "database.password": "****",
        "schema.history.internal.producer.sasl.jaas.config": "****",
        "client.secret": "****",
        "database.user": "cdc",
    }
    assert mask_text("login with password=abc123 failed") == "login with password=**** failed"
    assert mask_text("value topsecret leaked", ["topsecret"]) == "value **** leaked"
