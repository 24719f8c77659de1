"""Provider settings, model ids and capabilities: pure rules, checked without any server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.core.events import Usage
from bot.core.usage import PriceTable
from bot.llm.providers import CAPABILITIES, ModelMap, shape_for
from bot.settings import Settings, SettingsError

SLACK = {"slack_bot_token": "xoxb-1", "slack_signing_secret": "s"}


def settings(**values: object) -> Settings:
    return Settings(**SLACK, **values, _env_file=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("chain", "given", "missing"),
    [
        ("anthropic", {}, "ANTHROPIC_API_KEY"),
        ("anthropic,bedrock", {"anthropic_api_key": "k"}, "AWS_REGION"),
        ("vertex", {"cloud_ml_region": "us-east5"}, "ANTHROPIC_VERTEX_PROJECT_ID"),
        ("vertex", {"anthropic_vertex_project_id": "p"}, "CLOUD_ML_REGION"),
        ("foundry", {"anthropic_foundry_resource": "r"}, "ANTHROPIC_FOUNDRY_API_KEY"),
        ("foundry", {"anthropic_foundry_api_key": "SECRET"}, "ANTHROPIC_FOUNDRY_RESOURCE"),
    ],
)
def test_a_provider_without_its_settings_is_named_with_what_is_missing(
    chain: str, given: dict[str, str], missing: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(claude_providers=chain, **given).check_providers()
    line = str(caught.value)
    assert line.startswith(f"{missing}") and "missing" in line and "\n" not in line and "SECRET" not in line


def test_each_provider_is_ready_with_its_own_settings() -> None:
    ready = settings(
        claude_providers="bedrock, vertex,foundry",
        aws_default_region="eu-west-1",
        anthropic_vertex_project_id="p",
        cloud_ml_region="global",
        anthropic_foundry_api_key="k",
        anthropic_foundry_base_url="http://127.0.0.1:9/anthropic/",
    )
    ready.check_providers()  # no ANTHROPIC_API_KEY needed when Anthropic is not in the chain
    assert ready.provider_chain() == ("bedrock", "vertex", "foundry") and ready.bedrock_region() == "eu-west-1"
    with pytest.raises(SettingsError, match="ANTHROPIC_API_KEY"):
        ready.check_providers(only="anthropic")  # chat --provider anthropic


@pytest.mark.parametrize("chain", ["", "anthropic,azure", "bedrock,bedrock"])
def test_a_malformed_chain_is_refused(chain: str) -> None:
    with pytest.raises(ValidationError, match="claude_providers"):
        settings(claude_providers=chain, anthropic_api_key="k")


def test_the_command_names_the_missing_provider_setting_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "CLAUDE_", "AWS_"))}
    env.update(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", ANTHROPIC_API_KEY="k")
    env["CLAUDE_PROVIDERS"] = "anthropic,bedrock"
    result = subprocess.run(
        [sys.executable, "-m", "bot"], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=60
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2 and output.count("\n") == 0
    assert "AWS_REGION: missing" in output and "bedrock" in output


def test_model_ids_are_mapped_per_provider_and_overridable() -> None:
    models = ModelMap(ModelMap.parse('{"bedrock": {"claude-sonnet-5-5": "eu.anthropic.claude-sonnet-5-5"}}'))
    assert models.provider_id("anthropic", "claude-sonnet-5-5") == "claude-sonnet-5-5"
    assert models.provider_id("bedrock", "claude-sonnet-5-5") == "eu.anthropic.claude-sonnet-5-5"
    assert models.provider_id("bedrock", "claude-sonnet-4-5") == "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert models.provider_id("bedrock", "us.anthropic.claude-x-v1:0") == "us.anthropic.claude-x-v1:0"
    assert models.provider_id("vertex", "claude-haiku-4-5") == "claude-haiku-4-5@20251001"
    assert models.provider_id("foundry", "claude-opus-5") == "claude-opus-5"


@pytest.mark.parametrize("setting", ["[]", "{", '{"azure": {}}', '{"bedrock": {"claude-x": ""}}'])
def test_a_malformed_model_map_is_refused(setting: str) -> None:
    with pytest.raises(ValidationError, match="claude_model_map"):
        settings(anthropic_api_key="k", claude_model_map=setting)


def test_what_a_provider_lacks_is_left_out_of_its_request() -> None:
    searched = {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}}
    params = {
        "model": "claude-sonnet-5-5",
        "cache_control": {"type": "ephemeral"},
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "thinking": {"type": "adaptive"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {"role": "assistant", "content": [searched, {"type": "text", "text": "found"}]},
            {"role": "user", "content": [{"type": "text", "text": "more"}]},
        ],
    }
    shaped = shape_for(CAPABILITIES["bedrock"], params, model_id="global.anthropic.x", prefill="So far")
    assert shaped["model"] == "global.anthropic.x"
    assert "tools" not in shaped and "cache_control" not in shaped and "thinking" not in shaped
    assert shaped["messages"][1]["content"] == [{"type": "text", "text": "found"}]
    assert shaped["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "So far"}]}
    kept = shape_for(CAPABILITIES["anthropic"], params, model_id="claude-sonnet-5-5", prefill="")
    assert kept == params  # Anthropic offers everything: the request is untouched


def test_prices_are_per_provider_with_list_prices_by_default() -> None:
    usage = Usage(input_tokens=100_000)  # below the long-context threshold: list prices
    table = PriceTable.from_setting('{"vertex": {"claude-sonnet-5-5": {"input": 2.2, "output": 11.0}}}')
    assert table.cost("claude-sonnet-5-5", usage, "anthropic") == (pytest.approx(0.2), True)
    assert table.cost("claude-sonnet-5-5", usage, "bedrock") == (pytest.approx(0.2), True)
    assert table.cost("claude-sonnet-5-5", usage, "vertex") == (pytest.approx(0.22), True)
    with pytest.raises(ValueError, match="bedrock"):
        PriceTable.from_setting('{"bedrock": 3}')
