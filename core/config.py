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
    # Sign-in lockout: this many failures within the window lock the account (or the address) for lockout_s.
    login_max_failures: int = Field(5, ge=1, validation_alias="CDC_STUDIO_LOGIN_MAX_FAILURES")
    login_max_failures_per_address: int = Field(20, ge=1, validation_alias="CDC_STUDIO_LOGIN_MAX_FAILURES_PER_ADDRESS")
    login_window_s: int = Field(900, ge=1, validation_alias="CDC_STUDIO_LOGIN_WINDOW_S")
    lockout_s: int = Field(900, ge=1, validation_alias="CDC_STUDIO_LOCKOUT_S")
    # UI sessions end after this long without a page load, and any session (UI or login token) this long after login
    session_idle_minutes: int = Field(60, ge=1, validation_alias="CDC_STUDIO_SESSION_IDLE_MINUTES")
    session_max_hours: int = Field(12, ge=1, validation_alias="CDC_STUDIO_SESSION_MAX_HOURS")
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

    # Monitoring (core.monitoring): sampling, retention of the metrics history, health checks, Prometheus.
    metrics_sample_s: float = Field(10.0, validation_alias="CDC_STUDIO_METRICS_SAMPLE_S", gt=0)
    metrics_raw_hours: float = Field(48, validation_alias="CDC_STUDIO_METRICS_RAW_HOURS", gt=0)
    metrics_minute_days: float = Field(14, validation_alias="CDC_STUDIO_METRICS_MINUTE_DAYS", gt=0)
    metrics_hour_days: float = Field(400, validation_alias="CDC_STUDIO_METRICS_HOUR_DAYS", gt=0)
    metrics_public: bool = Field(False, validation_alias="CDC_STUDIO_METRICS_PUBLIC")
    metrics_table_labels: bool = Field(False, validation_alias="CDC_STUDIO_METRICS_TABLE_LABELS")
    health_interval_s: float = Field(30.0, validation_alias="CDC_STUDIO_HEALTH_INTERVAL_S", gt=0)
    # a data check reads a difference again after at least this long (or twice the lag) before it counts
    validation_recheck_s: float = Field(300.0, validation_alias="CDC_STUDIO_VALIDATION_RECHECK_S", ge=0)
    alert_reminder_hours: float = Field(4.0, validation_alias="CDC_STUDIO_ALERT_REMINDER_HOURS", gt=0)
    # Automatic recovery (core.recovery): exponential backoff with full jitter, reset after a healthy spell.
    retry_base_s: float = Field(5.0, validation_alias="CDC_STUDIO_RETRY_BASE_S", gt=0)
    retry_cap_s: float = Field(300.0, validation_alias="CDC_STUDIO_RETRY_CAP_S", gt=0)
    retry_reset_s: float = Field(600.0, validation_alias="CDC_STUDIO_RETRY_RESET_S", gt=0)
    # Largest request body the REST API reads (413 above it).
    max_body_bytes: int = Field(1024 * 1024, validation_alias="CDC_STUDIO_MAX_BODY_BYTES", gt=0)

    def resolved_database_url(self) -> str:
        """The app database: DATABASE_URL when given, else a SQLite file in the data folder."""
        if self.database_url:
            url = self.database_url
            # Accept the URLs people paste from Heroku-style environments; a bare postgresql:// means the
            # installed driver (psycopg2), not SQLAlchemy's default (psycopg 3, not a dependency).
            for bare in ("postgres://", "postgresql://"):
                if url.startswith(bare):
                    url = "postgresql+psycopg2://" + url[len(bare) :]
            return url
        return f"sqlite:///{(self.data_dir / 'cdc_studio.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings
