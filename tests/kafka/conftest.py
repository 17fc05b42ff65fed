"""The real Kafka stack (tansu broker + Kafka Connect with Debezium), started once per test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kafkastack import KafkaStack, KafkaStackError

_started: list[KafkaStack] = []


@pytest.fixture(scope="session")
def kafka_stack() -> Iterator[KafkaStack]:
    """A running stack; a stack that cannot start fails the tests (never skips them): CI must run them."""
    try:
        stack = KafkaStack.start()
    except KafkaStackError as exc:
        pytest.fail(f"the Kafka stack did not start: {exc}", pytrace=False)
    _started.append(stack)
    yield stack
    stack.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for stack in _started:
        terminalreporter.write_line(f"Kafka stack (tansu + Connect/Debezium) started in {stack.startup_seconds:.1f} s")
