"""The one typed Settings object: the only place that reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.setting_values import SettingsError as SettingsError
from bot.setting_values import describe_validation_error as describe_validation_error
from bot.setting_values import is_loopback as is_loopback
from bot.setting_values import summary_channels as summary_channels
from bot.slack.pacing import EDIT_INTERVAL_S, EDITS_PER_MINUTE, POSTS_PER_MINUTE

# A current model from the SDK's list (anthropic 2.14 `types/model_param.py`), not a deprecated one.
DEFAULT_MODEL = "claude-sonnet-5-5"
# Where Claude can be served from, each through the SDK's own client (bot/llm/providers.py).
PROVIDER_NAMES = ("anthropic", "bedrock", "vertex", "foundry")

PositiveSeconds = Annotated[float, Field(gt=0)]
_SWITCH_WORDS = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}


class Settings(BaseSettings):
    """Validated at start-up so a wrong setting stops the process with one clear line."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True, case_sensitive=False
    )

    # Slack
    # Required to serve Slack (checked by `check_slack`); the terminal chat runs without Slack settings.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    # Multi-workspace (OAuth): both set switch the bot to Bolt's install flow instead of one SLACK_BOT_TOKEN.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_scopes: str = ""  # comma-separated bot scopes asked for at install; empty: the manifest's bot scopes
    slack_redirect_uri: str | None = None  # https://YOUR-HOST/slack/oauth_redirect; unset: the app's only one
    # After app_uninstalled / tokens_revoked, a workspace's conversations and settings are deleted this much later
    # (its tokens at once); reinstalling within it keeps everything.
    uninstall_data_grace_s: PositiveSeconds = 7 * 24 * 3600.0

    # Claude. ANTHROPIC_BASE_URL is read here too, so the SDK and our tests agree on where it points.
    # CLAUDE_PROVIDERS is the failover chain, in order (anthropic,bedrock,vertex,foundry); each provider is set up
    # with the variables its SDK client reads, checked by `check_providers`.
    claude_providers: str = "anthropic"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    aws_region: str | None = None
    aws_default_region: str | None = None  # the AWS CLI's name for it, used when AWS_REGION is unset
    aws_bearer_token_bedrock: SecretStr | None = None  # a Bedrock API key; unset: the standard AWS credential chain
    anthropic_bedrock_base_url: str | None = None
    anthropic_vertex_project_id: str | None = None
    cloud_ml_region: str | None = None
    anthropic_vertex_base_url: str | None = None
    vertex_access_token: SecretStr | None = None  # a ready bearer token; unset: Google application-default creds
    anthropic_foundry_api_key: SecretStr | None = None
    anthropic_foundry_resource: str | None = None
    anthropic_foundry_base_url: str | None = None
    # JSON {"bedrock": {"claude-sonnet-5-5": "eu.anthropic.claude-sonnet-5-5"}}: provider model ids over the table.
    claude_model_map: str = ""
    # A provider that failed this many calls in a row is skipped for the cool-down, then probed by one call.
    provider_failure_threshold: int = Field(default=3, ge=1, le=100)
    provider_cooldown_s: PositiveSeconds = 30.0
    claude_model: str = DEFAULT_MODEL
    claude_fallback_model: str | None = None
    claude_max_tokens: int = Field(default=4096, ge=1, le=128_000)
    claude_max_attempts: int = Field(default=3, ge=1, le=10)
    claude_retry_base_delay_s: float = Field(default=0.5, ge=0)
    claude_silence_timeout_s: PositiveSeconds = 60.0
    claude_connect_timeout_s: PositiveSeconds = 10.0

    # Storage. A secret: the URL may carry a password (rediss://:password@host:6380/0).
    redis_url: SecretStr | None = None
    redis_tls_ca_file: Path | None = None  # CA bundle for a rediss:// server whose certificate is privately signed
    redis_key_prefix: str = "claude-bot:"
    redis_cluster: bool = False  # REDIS_URL is a seed node of a Redis Cluster; keys get hash tags (storage/keys.py)
    data_dir: Path = Path("./data")
    conversation_ttl_s: int = Field(default=30 * 24 * 3600, gt=0)
    dm_idle_reset_s: int = Field(default=8 * 3600, gt=0)
    # Slack retries for about 5 minutes (3 retries); 6 h also covers its optional "delayed events" mode's first hours.
    event_dedup_ttl_s: int = Field(default=6 * 3600, gt=0)
    storage_wait_s: float = Field(default=30.0, ge=0)
    # A thread's lease: a process cut off from Redis this long may find another answering in the thread (its own
    # writes are then refused, see bot/core/leases.py); a crashed process frees its threads within this time.
    thread_lease_s: float = Field(default=30.0, gt=0)

    # Slack rendering; the defaults and Slack's limits behind them: bot/slack/pacing.py
    edit_interval_s: float = Field(default=EDIT_INTERVAL_S, ge=1.0, le=3.0)
    workspace_edits_per_minute: int = Field(default=EDITS_PER_MINUTE, ge=1)
    workspace_posts_per_minute: int = Field(default=POSTS_PER_MINUTE, ge=1)
    max_message_chars: int = Field(default=3500, ge=500, le=3900)
    # Slack's native streaming (chat.startStream...): "auto" uses it in the assistant pane, "true" in every thread,
    # "false" never. Edits of a posted message are the fallback whenever Slack refuses it.
    slack_native_streaming: Literal["auto", "true", "false"] = "auto"

    # HTTP mode (in Socket Mode too: /healthz; POST /slack/events there only with SLACK_SIGNING_SECRET)
    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=0, le=65535)
    # /metrics names workspaces and their costs: its own port, loopback unless METRICS_HOST says otherwise, and a
    # bearer token required (start-up refuses without one) whenever that address is not loopback.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_token: SecretStr | None = None  # when set, GET /metrics needs "Authorization: Bearer <token>"
    # Comma-separated addresses of reverse proxies whose X-Forwarded-For is believed (install rate limits); empty:
    # the peer address is the client's.
    trusted_proxies: str = ""
    install_rate_per_minute: int = Field(default=10, ge=1)  # GET /slack/install per client address per minute
    install_max_states: int = Field(default=10_000, ge=1)  # live OAuth states (each lives 10 minutes) at most
    # OAuth mode: Fernet keys (comma-separated; the first encrypts, all decrypt) for installation tokens in Redis.
    token_encryption_key: SecretStr | None = None
    # On SIGTERM: how long answers in progress may run on before they are closed with a note. Below the usual
    # 30 s a container runtime waits before SIGKILL, leaving time to write those notes.
    shutdown_grace_s: float = Field(default=25.0, ge=0)

    # Files: downloaded only from Slack's file host and SLACK_API_URL's host, plus these (comma-separated).
    slack_file_hosts: str = ""
    max_file_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    # Images and PDFs sent with each request, newest first (the API allows 100 images; each costs tokens).
    max_images_per_thread: int = Field(default=20, ge=1, le=100)
    # Images decoded at once (each may need a few hundred MB at its peak); more wait their turn.
    image_decode_concurrency: int = Field(default=2, ge=1, le=64)

    # Tools
    max_tool_rounds: int = Field(default=8, ge=1, le=50)
    tool_approval_timeout_s: float = Field(default=600.0, gt=0)
    tool_timeout_s: float = Field(default=60.0, gt=0)  # upper bound on any one tool call
    web_search_enabled: bool = False  # Anthropic's server-side web search (billed per search)
    fetch_url_enabled: bool = True
    fetch_url_allow_hosts: str = ""  # comma-separated hosts exempt from the private-address check (tests, intranets)
    mcp_config: Path | None = None  # JSON file: {"mcpServers": {"name": {"command": ...} | {"url": ...}}}

    # Long threads: the most input tokens one request may carry (even when the model's window is larger), when
    # to fold old turns into a summary, and the cheap model that writes summaries and triages thinking.
    context_token_limit: int = Field(default=200_000, ge=4_000)
    context_fold_at: float = Field(default=0.7, gt=0.1, lt=1.0)
    context_keep_recent_turns: int = Field(default=6, ge=2, le=100)
    claude_fast_model: str = "claude-haiku-4-5"

    # Extended thinking for personas that do not set it: off, adaptive, or a budget in tokens (>= 1024).
    thinking: Literal["off", "adaptive"] | Annotated[int, Field(ge=1024)] = "off"
    thinking_medium_budget: int = Field(default=4_096, ge=1_024)
    thinking_large_budget: int = Field(default=16_384, ge=1_024)
    log_thinking: bool = False  # debugging: write Claude's thinking to the logs (never shown in Slack)

    # Usage, cost and budgets (USD). Empty budgets mean no limit.
    budget_month_usd: float | None = Field(default=None, gt=0)
    budget_user_day_usd: float | None = Field(default=None, gt=0)
    budget_fallback_model: str | None = None  # cheaper model used near the monthly limit instead of refusing
    # Comma-separated user ids who may see /claude-cost and get budget warnings: U123 (any workspace) or T123:U123
    # (that workspace only, for OAuth bots serving several).
    cost_admins: str = ""
    price_overrides: str = ""  # JSON: {"model-id": {"input": USD per MTok, "output": USD per MTok}}
    usage_raw_retention_days: int = Field(default=30, ge=1)
    weekly_summary_channel: str | None = None

    # Access: comma-separated ids; empty allow-lists mean everyone.
    allowed_channels: str = ""
    allowed_users: str = ""
    denied_users: str = ""

    # Personas: the shipped personas/ folder, plus a deployment's own (same name replaces a shipped one).
    personas_dir: Path | None = None
    default_persona: str = "default"
    persona_change: Literal["anyone", "admins"] = "anyone"
    profile_cache_ttl_s: int = Field(default=3600, gt=0)
    # The bot's language for people whose Slack locale has no catalog (and for admin-wide notices): en, ja, es, fr, de.
    default_locale: str = Field(default="en", pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")

    log_level: str = "INFO"
    # json: one JSON object per line (for log collectors); text: for people; auto: text on a terminal, else json.
    log_format: Literal["auto", "json", "text"] = "auto"
    # Debugging only: also log the text of questions and answers (never tokens).
    log_message_text: bool = False

    @field_validator("slack_native_streaming", mode="before")
    @classmethod
    def _streaming_words(cls, value: object) -> object:
        """`True`, `on`, `1`... mean the same to an operator as `true`."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            word = value.strip().lower()
            return {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}.get(
                word, word
            )
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # Bolt only treats xoxb- tokens as bot tokens (slack.md §1.1); anything else fails later, obscurely.
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url_shape(cls, value: str) -> str:
        AnyHttpUrl(value)  # raises on garbage
        return value if value.endswith("/") else value + "/"

    @field_validator(
        "anthropic_api_key",
        "anthropic_base_url",
        "aws_region",
        "aws_default_region",
        "aws_bearer_token_bedrock",
        "anthropic_bedrock_base_url",
        "anthropic_vertex_project_id",
        "cloud_ml_region",
        "anthropic_vertex_base_url",
        "vertex_access_token",
        "anthropic_foundry_api_key",
        "anthropic_foundry_resource",
        "anthropic_foundry_base_url",
        "redis_url",
        "redis_tls_ca_file",
        "metrics_token",
        "token_encryption_key",
        "slack_signing_secret",
        "slack_bot_token",
        "slack_client_id",
        "slack_client_secret",
        "slack_redirect_uri",
        "weekly_summary_channel",
        "personas_dir",
        "mcp_config",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "anthropic_base_url",
        "anthropic_bedrock_base_url",
        "anthropic_vertex_base_url",
        "anthropic_foundry_base_url",
        "slack_redirect_uri",
    )
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is not None:
            AnyHttpUrl(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked here so a typo stops start-up with one line; the message never repeats the URL (it may hold a
        # password).
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// (TLS) or unix://")
        return value

    @model_validator(mode="after")
    def _tls_ca_needs_tls(self) -> Settings:
        if self.redis_tls_ca_file is not None:
            url = self.redis_url.get_secret_value() if self.redis_url is not None else ""
            if not url.startswith("rediss://"):
                raise ValueError("REDIS_TLS_CA_FILE needs a rediss:// REDIS_URL")
            if not self.redis_tls_ca_file.is_file():
                raise ValueError("REDIS_TLS_CA_FILE: no such file")
        return self

    @model_validator(mode="after")
    def _cluster_needs_a_node(self) -> Settings:
        if "{" in self.redis_key_prefix or "}" in self.redis_key_prefix:
            raise ValueError("REDIS_KEY_PREFIX may not contain '{' or '}' (they would become the keys' hash tag)")
        if self.redis_cluster:
            url = self.redis_url.get_secret_value() if self.redis_url is not None else ""
            if not url.startswith(("redis://", "rediss://")):
                raise ValueError("REDIS_CLUSTER=true needs REDIS_URL set to one node: redis://host:port or rediss://")
            path = urlsplit(url).path.strip("/")
            if path not in ("", "0"):
                raise ValueError("REDIS_CLUSTER=true: a Redis Cluster has only database 0; drop the /N from REDIS_URL")
        return self

    @field_validator("token_encryption_key")
    @classmethod
    def _fernet_keys_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from bot.storage.token_crypto import TokenCipher

            TokenCipher.from_setting(value.get_secret_value())  # raises ValueError naming no key
        return value

    @field_validator("weekly_summary_channel")
    @classmethod
    def _summary_channel_shape(cls, value: str | None) -> str | None:
        if value is not None:
            summary_channels(value)  # raises ValueError with a plain message
        return value

    @staticmethod
    def id_list(value: str) -> frozenset[str]:
        return frozenset(part.strip() for part in value.split(",") if part.strip())

    @field_validator("price_overrides")
    @classmethod
    def _prices_shape(cls, value: str) -> str:
        if value.strip():
            from bot.core.usage import PriceTable

            PriceTable.from_setting(value)  # raises ValueError with a plain message
        return value

    @field_validator("claude_providers")
    @classmethod
    def _providers_shape(cls, value: str) -> str:
        from bot.llm.providers import parse_chain

        return parse_chain(value)  # raises ValueError with a plain message

    @field_validator("claude_model_map")
    @classmethod
    def _model_map_shape(cls, value: str) -> str:
        from bot.llm.providers import ModelMap

        ModelMap.parse(value)  # raises ValueError with a plain message
        return value

    def provider_chain(self) -> tuple[str, ...]:
        return tuple(self.claude_providers.split(","))

    def bedrock_region(self) -> str | None:
        return self.aws_region or self.aws_default_region

    def check_providers(self, only: str | None = None) -> None:
        """Each provider in the chain (or just `only`) has its settings; else SettingsError naming what is missing."""
        from bot.llm.providers import check_settings

        check_settings(self, only)

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def oauth(self) -> bool:
        """Multi-workspace: installations (and their tokens) come from Bolt's OAuth flow, not SLACK_BOT_TOKEN."""
        return self.slack_client_id is not None

    def bot_scopes(self, manifest_scopes: tuple[str, ...]) -> list[str]:
        """What the install asks for: SLACK_SCOPES when set, else the manifest's bot scopes."""
        return sorted(self.id_list(self.slack_scopes)) or list(manifest_scopes)

    def weekly_summaries(self) -> dict[str | None, str]:
        """WEEKLY_SUMMARY_CHANNEL as {workspace id (None: the single token's own): channel id}."""
        return summary_channels(self.weekly_summary_channel) if self.weekly_summary_channel else {}

    def check_slack(self) -> None:
        """Serving Slack needs a bot token or an OAuth app; HTTP mode also needs the signing secret."""
        if (self.slack_client_id is None) != (self.slack_client_secret is None):
            missing = "SLACK_CLIENT_SECRET" if self.slack_client_secret is None else "SLACK_CLIENT_ID"
            raise SettingsError(f"{missing}: missing (the OAuth install flow needs both client id and secret)")
        if self.oauth:
            if self.socket_mode:
                raise SettingsError(
                    "SLACK_APP_TOKEN: the OAuth install flow (SLACK_CLIENT_ID) needs HTTP mode; unset SLACK_APP_TOKEN"
                )
            if self.slack_bot_token is not None:
                raise SettingsError(
                    "SLACK_BOT_TOKEN: set either SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                    "SLACK_CLIENT_SECRET (OAuth, many workspaces), not both"
                )
            if None in self.weekly_summaries():
                raise SettingsError(
                    "WEEKLY_SUMMARY_CHANNEL: with OAuth, name each channel's workspace (T123:C456, comma-separated)"
                )
        elif self.slack_bot_token is None:
            raise SettingsError("SLACK_BOT_TOKEN: missing (or set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth)")
        if not self.socket_mode and self.slack_signing_secret is None:
            raise SettingsError("SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)")
        if self.oauth and self.token_encryption_key is None:
            raise SettingsError(
                "TOKEN_ENCRYPTION_KEY: required with OAuth (installation tokens are stored encrypted); make one with "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            )
        if self.metrics_token is None and not is_loopback(self.metrics_host):
            raise SettingsError(
                f"METRICS_TOKEN: required when METRICS_HOST ({self.metrics_host}) is not a loopback address"
            )

    def secret_values(self) -> list[str]:
        """Every configured secret, for the logs to redact by value (Fernet keys one by one)."""
        secrets = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.slack_client_secret,
            self.anthropic_api_key,
            self.aws_bearer_token_bedrock,
            self.vertex_access_token,
            self.anthropic_foundry_api_key,
            self.metrics_token,
        ]
        values = [secret.get_secret_value() for secret in secrets if secret is not None]
        if self.token_encryption_key is not None:
            values += [key.strip() for key in self.token_encryption_key.get_secret_value().split(",")]
        if self.redis_url is not None:
            password = urlsplit(self.redis_url.get_secret_value()).password
            values += [password] if password else []
        return [value for value in values if value]


def load_settings(*, for_slack: bool = True, provider: str | None = None) -> Settings:
    """Read the environment (and .env) once, translating validation errors into SettingsError.

    `provider` (chat --provider) checks that one provider's settings instead of the whole CLAUDE_PROVIDERS chain.
    """
    try:
        settings = Settings()
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
    settings.check_providers(only=provider)
    if for_slack:
        settings.check_slack()
    return settings
