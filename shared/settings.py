"""Service configuration, read only from environment variables (SPEC "Running")."""

from functools import cached_property
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_LINK_SECRET_BYTES = 32
MIN_API_KEY_CHARS = 16

# Values that appear in docs, examples and earlier defaults: anyone can read them.
WELL_KNOWN_SECRETS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "changeit",
        "secret",
        "password",
        "dev-link-secret",
        "dev-only-link-secret",
        "local-only-link-secret-change-me",
        "your-secret-here",
        "test",
        "default",
    }
)


class StartupRefused(RuntimeError):
    """A setting is unsafe or missing; the message names it (X6)."""


def is_well_known_secret(key: str) -> bool:
    """A key from a published example, a placeholder, or with hardly any variety
    (`aaaa…`, `0000…`): an attacker's first guesses."""
    folded = key.strip().lower()
    if folded in WELL_KNOWN_SECRETS:
        return True
    if any(word in folded for word in ("change-me", "changeme", "change_me")):
        return True
    return len(set(folded)) < 6


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
    kafka_side_fetch_max_wait_ms: int = Field(
        500,
        gt=0,
        description="The same for every input but the service's main one (read models,"
        " definitions, privacy, SMS replies): how long such a consumer's fetch and poll"
        " wait for data. On the embedded broker each idle consumer costs one fetch per"
        " wait, so the dev stack keeps 500 here against 50 for the main inputs.",
    )
    kafka_compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4",
        description="How producers compress batches (X7). lz4: the cheapest codec in CPU"
        " on both ends at a ratio close to gzip on JSON; every Kafka client reads it.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = Field(
        None, description="CA bundle (PEM) that signed the brokers' certificates."
    )
    kafka_ssl_certfile: str | None = Field(None, description="Client certificate (PEM), mTLS.")
    kafka_ssl_keyfile: str | None = Field(None, description="Client private key (PEM), mTLS.")
    kafka_topic_prefix: str = Field(
        "", description="Put before every topic name (shared clusters with prefixed ACLs)."
    )
    kafka_group_prefix: str = Field(
        "", description="Put before every consumer group id (`consentflow.<consumer>`)."
    )
    kafka_partition_grace_s: float = Field(
        30.0,
        gt=0,
        description="How long a joined consumer may hold no partitions before /readyz"
        " answers 503 (X8).",
    )
    kafka_stall_s: float = Field(
        60.0,
        gt=0,
        description="How long a consumer may have records waiting and apply none (or a"
        " background loop make no pass) before /readyz answers 503 (X8).",
    )
    kafka_input_consumers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Consumers of a service's main input (the executor's profile-events,"
        " consent's consent-commands, the dispatcher's alert-requests, suppression's"
        " suppression-commands) in each process, all in the input's one group: each"
        " applies the partitions it holds in order, and while one waits for PostgreSQL"
        " another decodes and decides. More than the topic's partitions only idle. Unset:"
        " the service's own choice, 2 for the flow executor (a quarter more intake at the"
        " same latency) and 1 for the others (docs/performance.md, 7 Dec 2026).",
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
    link_secret: SecretStr | None = Field(
        None, description="HMAC key of link tokens; at least 32 bytes, not a known value (X6)."
    )
    link_secrets: SecretStr | None = Field(
        None,
        description="Comma-separated link keys for rotation: the first signs, every one"
        " verifies. When set it replaces LINK_SECRET (X6).",
    )
    confirm_link_ttl_days: float = Field(
        14, gt=0, description="How long a confirmation link works (C12); then it offers a new mail."
    )
    message_id_domain: str = Field(
        "",
        description="The domain part of the Message-IDs of sent mail; empty: the host of"
        " PUBLIC_BASE_URL.",
    )
    api_keys: str = Field("", description="Comma-separated account:key pairs (X5).")
    privacy_hash_secret: SecretStr | None = Field(
        None,
        description="Keys the hashes of erased emails and phone numbers (P2); at least 32"
        " bytes, separate from LINK_SECRET so rotating link keys keeps erasures.",
    )

    log_level: str = "INFO"

    # Domain tuning (documented in docs/rules.md).
    soft_bounce_limit: int = 7
    alert_send_limit_per_hour: int = Field(10_000, ge=1, description="Default per account (A8).")
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
        8,
        ge=1,
        description="SMTP connections per service, sending from one queue of claimed mails."
        " A connection hands the server its next mail only once the last one's answer is"
        " durably written, and the answers of all connections share that write: more"
        " connections, more mails per write (docs/performance.md). A crash can repeat at"
        " most one mail per connection (A9).",
    )
    email_double_opt_in: bool = True
    scheduler_interval_s: float = 0.5

    @model_validator(mode="after")
    def _kafka_security(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs"
                " KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        return self

    def kafka_topic(self, topic: str) -> str:
        """The name of `topic` on the cluster (with `KAFKA_TOPIC_PREFIX`)."""
        return f"{self.kafka_topic_prefix}{topic}"

    def kafka_group(self, name: str) -> str:
        """The consumer group id of consumer `name` (with `KAFKA_GROUP_PREFIX`)."""
        return f"{self.kafka_group_prefix}consentflow.{name}"

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def link_keys(self) -> list[str]:
        """The link keys, signing key first (LINK_SECRETS, else LINK_SECRET)."""
        if self.link_secrets is not None:
            raw = self.link_secrets.get_secret_value().split(",")
            return [k.strip() for k in raw if k.strip()]
        if self.link_secret is not None:
            return [self.link_secret.get_secret_value()]
        return []

    @property
    def link_signing_key(self) -> str:
        """The key new links are signed with (the first of LINK_SECRETS)."""
        keys = self.link_keys
        if not keys:
            raise StartupRefused("LINK_SECRET is not set")
        return keys[0]

    def check_startup(self) -> None:
        """Fail closed (X6): raise StartupRefused naming the setting when a link key is
        missing, short or well known, or an API key is short or given to two accounts. A
        service that signed links with a guessable key would let anyone forge consent;
        one whose key grants an account other than the one its holder was given would
        let them change another account's data. Better not to start."""
        setting = "LINK_SECRETS" if self.link_secrets is not None else "LINK_SECRET"
        keys = self.link_keys
        if not keys:
            raise StartupRefused(f"{setting} is not set: generate one with `openssl rand -hex 32`")
        for n, key in enumerate(keys, 1):
            where = f"{setting} (key {n})" if len(keys) > 1 else setting
            if len(key.encode()) < MIN_LINK_SECRET_BYTES:
                raise StartupRefused(
                    f"{where} is shorter than {MIN_LINK_SECRET_BYTES} bytes:"
                    " generate one with `openssl rand -hex 32`"
                )
            if is_well_known_secret(key):
                raise StartupRefused(f"{where} is a well-known value; generate a random one")
        try:
            keys_of = self.api_key_accounts
        except ValueError as exc:
            raise StartupRefused(str(exc)) from exc
        for key, account in keys_of.items():
            if len(key) < MIN_API_KEY_CHARS:
                raise StartupRefused(
                    f"API_KEYS: the key of account {account!r} is shorter than"
                    f" {MIN_API_KEY_CHARS} characters"
                )

    @property
    def mail_domain(self) -> str:
        """The Message-ID domain: configured, or the host people reach the links on."""
        return self.message_id_domain or urlsplit(self.public_base_url).hostname or "localhost"

    @cached_property
    def api_key_accounts(self) -> dict[str, str]:
        """API key -> the one account it grants (X5). An account may have several keys;
        one key given to two accounts is refused (X6), the error naming the accounts and
        never the key."""
        keys: dict[str, str] = {}
        for n, raw in enumerate(self.api_keys.split(","), start=1):
            if not (pair := raw.strip()):
                continue
            account, sep, key = pair.partition(":")
            if not sep or not account or not key:
                # X6: name the entry by its place, never by its text (it may hold a key).
                raise ValueError(f"API_KEYS entry {n} is not account:key")
            first = keys.setdefault(key, account)
            if first != account:
                raise ValueError(
                    f"API_KEYS gives one key to two accounts, {first!r} and {account!r}:"
                    " a key grants exactly one account; give each its own key"
                )
        return keys
