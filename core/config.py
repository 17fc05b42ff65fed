"""One Settings object, read from environment variables and an optional `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the app can be configured with; secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    host: str = Field("127.0.0.1", validation_alias="CDC_STUDIO_HOST")
    port: int = Field(8080, validation_alias="CDC_STUDIO_PORT")
    data_dir: Path = Field(Path("var"), validation_alias="CDC_STUDIO_DATA_DIR")
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL", "CDC_STUDIO_DATABASE_URL"))
    secret_key: SecretStr | None = Field(None, validation_alias="CDC_STUDIO_SECRET_KEY")
    admin_email: str | None = Field(None, validation_alias="CDC_STUDIO_ADMIN_EMAIL")
    admin_password: SecretStr | None = Field(None, validation_alias="CDC_STUDIO_ADMIN_PASSWORD")
    token_ttl_minutes: int = Field(12 * 60, validation_alias="CDC_STUDIO_TOKEN_TTL_MINUTES")
    connect_timeout_s: int = Field(5, validation_alias="CDC_STUDIO_CONNECT_TIMEOUT")
    instance: str | None = Field(None, validation_alias="CDC_STUDIO_INSTANCE", pattern=r"^[a-z0-9]{1,12}$")
    kafka_connect_url: str | None = Field(None, validation_alias="KAFKA_CONNECT_URL")
    kafka_bootstrap_servers: str | None = Field(None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    # Optional security for the app's Kafka consumer and Connect REST calls.
    kafka_security_protocol: str | None = Field(None, validation_alias="KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: str | None = Field(None, validation_alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, validation_alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_ca_location: str | None = Field(None, validation_alias="KAFKA_SSL_CA_LOCATION")
    kafka_session_timeout_ms: int = Field(10_000, validation_alias="KAFKA_SESSION_TIMEOUT_MS")
    kafka_heartbeat_ms: int = Field(10_000, validation_alias="KAFKA_DEBEZIUM_HEARTBEAT_MS")
    # Change topics Debezium creates: one partition (commit order per table); -1 = the brokers' default.
    kafka_topic_replication_factor: int = Field(-1, validation_alias="KAFKA_TOPIC_REPLICATION_FACTOR")
    kafka_connect_username: str | None = Field(None, validation_alias="KAFKA_CONNECT_USERNAME")
    kafka_connect_password: SecretStr | None = Field(None, validation_alias="KAFKA_CONNECT_PASSWORD")
    kafka_connect_ca_location: str | None = Field(None, validation_alias="KAFKA_CONNECT_CA_LOCATION")

    def resolved_database_url(self) -> str:
        """The app database: DATABASE_URL when given, else a SQLite file in the data folder."""
        if self.database_url:
            url = self.database_url
            # Accept the URLs people paste from Heroku-style environments.
            if url.startswith("postgres://"):
                url = "postgresql+psycopg2://" + url[len("postgres://") :]
            return url
        return f"sqlite:///{(self.data_dir / 'cdc_studio.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings
