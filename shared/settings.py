"""Service configuration, read only from environment variables (SPEC "Running")."""

from functools import cached_property

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a service needs to run; the same class for all four services.

    Names match the environment variables in SPEC (case-insensitive). The `KAFKA_*`
    tuning values beyond SPEC have production defaults; the dev stack and tests shorten
    the session timeout so that rebalances after a crash take about a second.
    """

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_enable_idempotence: bool = Field(
        True, description="On for Apache Kafka; the embedded broker lacks InitProducerId."
    )
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_max_batch_records: int = 1000
    kafka_batch_timeout_ms: int = 50
    kafka_request_timeout_ms: int = 30_000
    kafka_fetch_max_wait_ms: int = Field(
        500,
        description="Longest a fetch waits for data. Apache Kafka answers as soon as data"
        " arrives; the embedded broker waits it out, so the dev stack sets 50.",
    )
    topic_partitions: int = 4

    database_url: str = "postgresql://postgres@127.0.0.1:5432/consentflow"
    database_pool_size: int = 8
    retention_days: float = Field(
        7,
        gt=0,
        description="How long processed message ids (the inbox) and finished mails are"
        " kept before pruning.",
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_base_url: str = "http://127.0.0.1:8080"
    link_secret: SecretStr = SecretStr("change-me")
    api_keys: str = Field("", description="Comma-separated account:key pairs (X5).")

    log_level: str = "INFO"

    # Domain tuning (documented in docs/rules.md).
    soft_bounce_limit: int = 7
    alert_send_limit_per_hour: int = 10_000
    alert_send_window_s: int = Field(
        3600, ge=1, description="Length of the sending-limit window; an hour except in tests."
    )
    mail_retry_base_s: float = Field(1.0, gt=0, description="First SMTP retry delay (doubles).")
    mail_lease_s: float = Field(
        120.0, gt=0, description="How long a claimed mail stays claimed before it is retried."
    )
    mail_retry_max_s: float = Field(300.0, gt=0, description="Longest wait between retries.")
    mail_max_attempts: int = Field(20, ge=1, description="Attempts before a mail is failed.")
    mail_batch_size: int = Field(50, ge=1, description="Mails claimed per worker pass.")
    mail_connections: int = Field(
        4, ge=1, description="SMTP connections per service, each sending its own claims."
    )
    email_double_opt_in: bool = True
    scheduler_interval_s: float = 0.5

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @cached_property
    def api_key_accounts(self) -> dict[str, str]:
        """API key -> the one account it grants (X5)."""
        keys: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in self.api_keys.split(","))):
            account, sep, key = pair.partition(":")
            if not sep or not account or not key:
                raise ValueError(f"API_KEYS entry {pair!r} is not account:key")
            keys[key] = account
        return keys
