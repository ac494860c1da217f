"""One typed settings object: values come from CLI options / flow parameters, then env, then defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path(".relance")
DB_FILE = "relance.duckdb"
#: The DuckDB file when none is named and RELANCE_HOME is not set (the flows' parameter default).
DEFAULT_DB = DEFAULT_HOME / DB_FILE


class Settings(BaseSettings):
    """Environment-driven configuration (prefix ``RELANCE_``); secrets are ``SecretStr`` and never logged."""

    model_config = SettingsConfigDict(env_prefix="RELANCE_", extra="ignore")

    home: Path = DEFAULT_HOME
    source_schema: str = "public"
    #: Bearer token for an http(s) source (env RELANCE_SOURCE_TOKEN, else the Prefect Secret block below).
    source_token: SecretStr | None = None
    source_token_block: str = "relance-source-token"
    http_timeout_s: float = 30.0
    http_retries: int = 5
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_api_key: SecretStr | None = Field(default=None, validation_alias="SENDGRID_API_KEY")
    sendgrid_key_block: str = "sendgrid-api-key"
    #: The provider-events receiver (tasks/events.py): SendGrid's Event Webhook verification key
    #: (base64 DER, env SENDGRID_WEBHOOK_PUBLIC_KEY, else the Prefect Secret block below).
    sendgrid_webhook_public_key: SecretStr | None = Field(default=None, validation_alias="SENDGRID_WEBHOOK_PUBLIC_KEY")
    sendgrid_webhook_key_block: str = "sendgrid-webhook-public-key"
    events_journal: Path | None = None  # default: <home>/events
    events_max_age_s: float = 300.0  # a signed request older (or further ahead) than this is refused
    events_max_body: int = 1_048_576  # bytes; larger requests get 413
    events_public_url: str | None = None  # the URL the SMS gateway calls (behind a proxy), for its signature
    #: The SMS gateway (tasks/dispatch/sms.py): a Twilio-compatible API, its account and auth token
    #: (env RELANCE_SMS_AUTH_TOKEN, else the Prefect Secret block below), and an optional messaging
    #: service instead of the sender of channels.yaml.
    sms_base_url: str = "https://api.twilio.com"
    sms_account_sid: str | None = None
    sms_auth_token: SecretStr | None = None
    sms_auth_token_block: str = "relance-sms-auth-token"
    sms_messaging_service_sid: str | None = None
    #: Seconds to wait for another process's lock on the DuckDB file before giving up (tasks/warehouse.py).
    db_wait_s: float = 0.0
    #: Another channels' settings file than templates/channels.yaml (tasks/dispatch/config.py).
    channels_config: str | None = None
    #: How often a paused flow run asks Prefect whether the approval came (tasks/approve.py).
    approval_poll_s: float = 10.0
    #: Where a failed run is reported (tasks/alerts.py): a webhook URL, an operations address, its sender.
    alert_webhook: str | None = None
    alert_email: str | None = None
    alert_from: str | None = None
    #: The checkout a Prefect worker runs (relance/core/checkout.py).
    repo: str | None = None
    #: Prefect's own variable: set when a Prefect API (and its Secret blocks) is reachable.
    prefect_api_url: str | None = Field(default=None, validation_alias="PREFECT_API_URL")

    @field_validator("db_wait_s", mode="before")
    @classmethod
    def _empty_is_zero(cls, v: object) -> object:
        return 0.0 if isinstance(v, str) and not v.strip() else v

    @property
    def default_db(self) -> Path:
        """The DuckDB file when none is named: <home>/relance.duckdb (.relance/relance.duckdb)."""
        return self.home / DB_FILE

    @property
    def events_journal_dir(self) -> Path:
        return self.events_journal or self.home / "events"


def get_settings() -> Settings:
    """The settings as the environment says now (read at each call: tests and runs may change it)."""
    return Settings()


def resolve_secret(env_value: SecretStr | None, block_name: str) -> str | None:
    """A secret from the environment first, else from a Prefect Secret block (if a Prefect API is configured)."""
    if env_value is not None and env_value.get_secret_value():
        return env_value.get_secret_value()
    if not get_settings().prefect_api_url:
        return None
    try:  # pragma: no cover - needs a Prefect server with the block
        from prefect.blocks.system import Secret

        return Secret.load(block_name).get()
    except Exception:
        return None
