"""Kafka Connect + Debezium: the REST client for the Connect cluster and the connector configs."""

from core.kafka.connect_client import (
    CONNECTOR_STATES,
    ConnectorInfo,
    ConnectorStatus,
    KafkaConnectClient,
    KafkaConnectError,
    PluginInfo,
    TaskStatus,
    ValidationResult,
    mask_config,
)

__all__ = [
    "CONNECTOR_STATES",
    "ConnectorInfo",
    "ConnectorStatus",
    "KafkaConnectClient",
    "KafkaConnectError",
    "PluginInfo",
    "TaskStatus",
    "ValidationResult",
    "mask_config",
]
