"""Where Claude is served: one home for each provider's SDK client, model ids and capabilities.

Every provider speaks the Messages API through the SDK's own client (`AsyncAnthropic`, `AsyncAnthropicBedrock`,
`AsyncAnthropicVertex`, `AsyncAnthropicFoundry`); the clients build the provider's URLs, bodies and auth. This module
only chooses the client, translates the model id the personas use (`claude-sonnet-5-5`) into the provider's, and
leaves out of a request what the provider does not offer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anthropic

from bot.settings import PROVIDER_NAMES, Settings, SettingsError


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider offers beyond plain Messages; what it lacks is left out of requests, never sent to fail."""

    web_search: bool  # the server-side web_search tool
    models_api: bool  # GET /v1/models/{id} (context window, thinking support)
    count_tokens: bool  # POST /v1/messages/count_tokens
    automatic_cache: bool  # the top-level `cache_control` (automatic breakpoint); explicit breakpoints stay


# Sources: https://platform.claude.com/docs/en/build-with-claude/claude-on-amazon-bedrock-legacy ,
# https://platform.claude.com/docs/en/build-with-claude/claude-on-vertex-ai and
# https://platform.claude.com/docs/en/build-with-claude/claude-in-microsoft-foundry , and the SDK itself: its Bedrock
# client refuses count_tokens ("not supported in Bedrock yet") and has no `models` resource, the Vertex client has no
# `models` resource, and the Foundry client sets `models` to None.
CAPABILITIES: dict[str, Capabilities] = {
    "anthropic": Capabilities(web_search=True, models_api=True, count_tokens=True, automatic_cache=True),
    # Unverified for web search and the automatic breakpoint on InvokeModel: left out, so a request cannot fail on them.
    "bedrock": Capabilities(web_search=False, models_api=False, count_tokens=False, automatic_cache=False),
    # Web search on Vertex: announced by Anthropic for Vertex AI; unverified against Google's own feature table.
    "vertex": Capabilities(web_search=True, models_api=False, count_tokens=True, automatic_cache=True),
    # Foundry runs Claude on Anthropic's infrastructure; count_tokens and web search there are unverified, so
    # count_tokens is left out (the bot estimates instead) and web search is kept (Anthropic's own server tool).
    "foundry": Capabilities(web_search=True, models_api=False, count_tokens=False, automatic_cache=True),
}

# Model ids per provider, keyed by the id personas and settings use. Verified against the providers' model tables
# (pages above) where marked; the rest follow the newest verified pattern and are UNVERIFIED: override them with
# CLAUDE_MODEL_MAP. Bedrock ids use the `global.` cross-region inference profile, which Claude 4+ needs for on-demand
# use and which carries no regional premium; a data-residency setup maps to `us.` / `eu.` / `apac.` ids instead.
DEFAULT_MODEL_MAP: dict[str, dict[str, str]] = {
    "bedrock": {
        "claude-opus-4-6": "global.anthropic.claude-opus-4-6-v1",  # verified
        "claude-sonnet-4-6": "global.anthropic.claude-sonnet-4-6",  # verified
        "claude-sonnet-4-5": "global.anthropic.claude-sonnet-4-5-20250929-v1:0",  # verified
        "claude-opus-4-5": "global.anthropic.claude-opus-4-5-20251101-v1:0",  # verified
        "claude-haiku-4-5": "global.anthropic.claude-haiku-4-5-20251001-v1:0",  # verified
        "claude-sonnet-5-5": "global.anthropic.claude-sonnet-5-5",  # unverified
        "claude-sonnet-5": "global.anthropic.claude-sonnet-5",  # unverified
        "claude-opus-5-5": "global.anthropic.claude-opus-5-5",  # unverified
        "claude-opus-5": "global.anthropic.claude-opus-5",  # unverified
    },
    "vertex": {
        "claude-opus-4-6": "claude-opus-4-6",  # verified
        "claude-sonnet-4-6": "claude-sonnet-4-6",  # verified
        "claude-sonnet-4-5": "claude-sonnet-4-5@20250929",  # verified
        "claude-opus-4-5": "claude-opus-4-5@20251101",  # verified
        "claude-haiku-4-5": "claude-haiku-4-5@20251001",  # verified
        # Newer models: the undated id, as Vertex lists Opus and Sonnet 4.6 (unverified for 5.x).
    },
    # Foundry calls a model by its deployment name, which defaults to the model id: the identity map.
    "foundry": {},
    "anthropic": {},
}


class ModelMap:
    """The provider's id for a model: CLAUDE_MODEL_MAP first, then the table above, then a pattern."""

    def __init__(self, overrides: Mapping[str, Mapping[str, str]] | None = None) -> None:
        extra = overrides or {}
        self._table = {name: {**DEFAULT_MODEL_MAP.get(name, {}), **extra.get(name, {})} for name in PROVIDER_NAMES}

    @staticmethod
    def parse(setting: str) -> dict[str, dict[str, str]]:
        """CLAUDE_MODEL_MAP, e.g. {"bedrock": {"claude-sonnet-5-5": "eu.anthropic.claude-sonnet-5-5"}}."""
        if not setting.strip():
            return {}
        try:
            raw = json.loads(setting)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error.msg}, at character {error.pos})") from None
        if not isinstance(raw, dict):
            raise ValueError('must be a JSON object like {"bedrock": {"claude-x": "global.anthropic.claude-x"}}')
        result: dict[str, dict[str, str]] = {}
        for provider, table in raw.items():
            if provider not in PROVIDER_NAMES:
                raise ValueError(f"unknown provider {provider!r} (known: {', '.join(PROVIDER_NAMES)})")
            if not isinstance(table, dict) or not all(isinstance(v, str) and v for v in table.values()):
                raise ValueError(f"{provider}: must map model ids to non-empty provider model ids")
            result[provider] = dict(table)
        return result

    def provider_id(self, provider: str, model: str) -> str:
        found = self._table.get(provider, {}).get(model)
        if found is not None:
            return found
        if provider == "bedrock" and "." not in model:
            return f"global.anthropic.{model}"  # unverified pattern for models the table does not list
        return model


_SERVER_TOOL_BLOCKS = {"server_tool_use", "web_search_tool_result"}


def shape_for(capabilities: Capabilities, params: dict[str, Any], *, model_id: str, prefill: str) -> dict[str, Any]:
    """The Messages request as this provider takes it: its model id, without what it lacks, and with the text already
    shown as an assistant prefill when a call continues an answer another provider started."""
    params = {**params, "model": model_id}
    if not capabilities.automatic_cache:
        params.pop("cache_control", None)
    if not capabilities.web_search:
        tools = [t for t in params.get("tools", []) if t.get("name") != "web_search"]
        if tools:
            params["tools"] = tools
        else:
            params.pop("tools", None)
            params.pop("tool_choice", None)
        # Earlier answers' searches stay in the thread; a provider without the tool rejects its blocks.
        params["messages"] = [
            {**m, "content": [b for b in m["content"] if b.get("type") not in _SERVER_TOOL_BLOCKS]}
            for m in params["messages"]
        ]
        params["messages"] = [m for m in params["messages"] if m["content"]]
    if prefill:
        # A prefilled answer cannot start with thinking the continuing call never did: the thinking was the first
        # call's, and the text shown came after it. The API rejects a prefill ending in whitespace.
        params.pop("thinking", None)
        continued = {"role": "assistant", "content": [{"type": "text", "text": prefill}]}
        params["messages"] = [*params["messages"], continued]
    return params


@dataclass(frozen=True, slots=True)
class Provider:
    """One place Claude is served: its name, its SDK client and what it offers."""

    name: str
    client: Any  # the SDK's client for this provider: Bedrock's and Vertex's share AsyncAnthropic's interface only
    capabilities: Capabilities
    models: ModelMap

    def model_id(self, model: str) -> str:
        return self.models.provider_id(self.name, model)


def parse_chain(value: str) -> str:
    """CLAUDE_PROVIDERS, normalised ("anthropic,bedrock"): known names, each once, at least one."""
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if not names:
        raise ValueError(f"name at least one of {', '.join(PROVIDER_NAMES)}")
    for name in names:
        if name not in PROVIDER_NAMES:
            raise ValueError(f"unknown provider {name!r} (known: {', '.join(PROVIDER_NAMES)})")
    if len(set(names)) != len(names):
        raise ValueError("a provider is named twice")
    return ",".join(names)


def check_settings(settings: Settings, only: str | None = None) -> None:
    """Each provider in the chain (or just `only`) has its settings; else one line naming what is missing."""
    if only is not None and only not in PROVIDER_NAMES:
        raise SettingsError(f"--provider: unknown provider {only!r} (known: {', '.join(PROVIDER_NAMES)})")
    for name in (only,) if only is not None else settings.provider_chain():
        missing = _missing_for(settings, name)
        if missing:
            raise SettingsError(f"{missing}: missing (needed for provider {name!r} in CLAUDE_PROVIDERS)")


def _missing_for(settings: Settings, name: str) -> str | None:
    """The setting a provider lacks. Cloud credentials (the AWS chain, Google ADC) resolve on the first call, since
    probing them could reach a metadata server; `claude-slack-bot chat --provider NAME` checks them."""
    if name == "anthropic" and settings.anthropic_api_key is None:
        return "ANTHROPIC_API_KEY"
    if name == "bedrock" and settings.bedrock_region() is None:
        return "AWS_REGION"
    if name == "vertex":
        if settings.anthropic_vertex_project_id is None:
            return "ANTHROPIC_VERTEX_PROJECT_ID"
        if settings.cloud_ml_region is None:
            return "CLOUD_ML_REGION"
    if name == "foundry":
        if settings.anthropic_foundry_api_key is None:
            return "ANTHROPIC_FOUNDRY_API_KEY"
        if settings.anthropic_foundry_resource is None and settings.anthropic_foundry_base_url is None:
            return "ANTHROPIC_FOUNDRY_RESOURCE (or ANTHROPIC_FOUNDRY_BASE_URL)"
    return None


def build_client(settings: Settings, name: str) -> Any:
    """The SDK's own client for `name`, configured from Settings (checked at start-up by `check_providers`)."""
    # The read timeout is a *silence* timeout: it fires when no bytes arrive for that long, never on a long answer
    # that keeps streaming (the server's pings count as bytes); the aiohttp transport maps it to `sock_read`.
    timeout = anthropic.Timeout(settings.claude_silence_timeout_s, connect=settings.claude_connect_timeout_s)
    # The SDK's aiohttp transport (vendored in the SDK; aiohttp is already ours) rather than httpx's: part of the
    # issue-15 changes that took CPU per answer from 31 to 22 ms at 200 at once (BENCHMARKS.md); its own share was
    # not measured apart.
    http = anthropic.DefaultAioHttpClient(timeout=timeout)
    common: dict[str, Any] = {"timeout": timeout, "max_retries": 2, "http_client": http}
    if name == "anthropic":
        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
        return anthropic.AsyncAnthropic(api_key=key, base_url=settings.anthropic_base_url, **common)
    if name == "bedrock":
        token = settings.aws_bearer_token_bedrock
        return anthropic.AsyncAnthropicBedrock(
            aws_region=settings.bedrock_region(),
            api_key=token.get_secret_value() if token is not None else None,
            base_url=settings.anthropic_bedrock_base_url,
            **common,
        )
    if name == "vertex":
        access = settings.vertex_access_token
        return anthropic.AsyncAnthropicVertex(
            region=settings.cloud_ml_region or "",
            project_id=settings.anthropic_vertex_project_id or "",
            access_token=access.get_secret_value() if access is not None else None,
            base_url=settings.anthropic_vertex_base_url,
            **common,
        )
    if name == "foundry":
        foundry_key = settings.anthropic_foundry_api_key
        assert foundry_key is not None  # check_providers made sure
        if settings.anthropic_foundry_base_url:
            return anthropic.AsyncAnthropicFoundry(
                api_key=foundry_key.get_secret_value(), base_url=settings.anthropic_foundry_base_url, **common
            )
        return anthropic.AsyncAnthropicFoundry(
            api_key=foundry_key.get_secret_value(), resource=settings.anthropic_foundry_resource, **common
        )
    raise ValueError(f"unknown provider {name!r}")


def build_providers(settings: Settings, only: str | None = None) -> list[Provider]:
    """The failover chain (CLAUDE_PROVIDERS, in order), or just `only` (for `chat --provider`)."""
    models = ModelMap(ModelMap.parse(settings.claude_model_map))
    names = [only] if only is not None else list(settings.provider_chain())
    return [Provider(name, build_client(settings, name), CAPABILITIES[name], models) for name in names]
