"""manifest.yml is a valid Slack app manifest and asks for what the bot needs.

Validation uses the vendored copy of Slack's manifest JSON Schema (tests/data/slack-manifest-schema);
the remote URLs it refers to are mapped to the local files, and any other reference fails instead of
being fetched, so this runs offline.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_PATH = ROOT / "manifest.yml"
SCHEMA_DIR = ROOT / "tests" / "data" / "slack-manifest-schema"
EVENTS_DIR = ROOT / "tests" / "data" / "slack-api-ref" / "events"

ENTRY_SCHEMA_URI = "https://github.com/slackapi/manifest-schema/blob/main/manifest.schema.json"
_VERSIONED_BASE = "https://raw.githubusercontent.com/slackapi/manifest-schema/v0.5.0/schemas/"
LOCAL_SCHEMAS = {
    ENTRY_SCHEMA_URI: "manifest.schema.json",
    _VERSIONED_BASE + "manifest.schema.1.0.0.json": "manifest.schema.1.0.0.json",
    _VERSIONED_BASE + "manifest.schema.2.0.0.json": "manifest.schema.2.0.0.json",
}

SUBSCRIBED_EVENTS = {
    "app_mention",
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
    "app_uninstalled",
    "tokens_revoked",
}
# Bolt's Assistant (bot/slack/listeners/assistant.py) handles these; Slack lists no scope for them, they come with
# features.assistant_view. Its setSuggestedPrompts / setTitle calls need assistant:write.
ASSISTANT_EVENTS = {"assistant_thread_started", "assistant_thread_context_changed"}
MAX_SUGGESTED_PROMPTS = 4  # the schema's agent_view says so; assistant_view leaves it out, Slack shows four
# Events every app receives without a scope (the reference lists none for them).
SCOPELESS_EVENTS = {"app_uninstalled", "tokens_revoked", "app_home_opened"}

# slack-api-ref spells this scope with a dot; Slack's scope name (and the manifest's) uses a colon.
SCOPE_SPELLING_FIXES = {"app_mentions.read": "app_mentions:read"}
SCOPE_SHAPE = re.compile(r"^[a-z_]+:[a-z_.]+$")


def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# referencing builds these __init__s with attrs through its own wrapper, which mypy cannot see.
def _refuse_to_fetch(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _registry() -> Registry[Any]:
    resources = [(uri, DRAFT7.create_resource(_load_json(SCHEMA_DIR / name))) for uri, name in LOCAL_SCHEMAS.items()]
    return Registry(retrieve=_refuse_to_fetch).with_resources(resources)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    entry = _load_json(SCHEMA_DIR / LOCAL_SCHEMAS[ENTRY_SCHEMA_URI])
    assert entry["$id"] == ENTRY_SCHEMA_URI
    return Draft7Validator(entry, registry=_registry())


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _all_errors(errors: Iterator[ValidationError]) -> Iterator[ValidationError]:
    """Every error, including those nested under oneOf/allOf (the entry schema dispatches by version)."""
    for error in errors:
        yield error
        yield from _all_errors(iter(error.context or ()))


@pytest.mark.parametrize("name", sorted(set(LOCAL_SCHEMAS.values())))
def test_vendored_schemas_are_valid_draft7(name: str) -> None:
    Draft7Validator.check_schema(_load_json(SCHEMA_DIR / name))


def test_manifest_is_valid(validator: Draft7Validator, manifest: dict[str, Any]) -> None:
    messages = [f"{list(e.absolute_path)}: {e.message}" for e in _all_errors(validator.iter_errors(manifest))]
    assert messages == []


def test_manifest_targets_schema_v1(manifest: dict[str, Any]) -> None:
    # The entry schema picks the versioned file from this; v1 is the one the Slack UI accepts today.
    assert manifest["_metadata"]["major_version"] == 1


def test_typo_in_top_level_key_is_rejected(validator: Draft7Validator, manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(manifest)
    broken["setings"] = broken.pop("settings")

    errors = list(_all_errors(validator.iter_errors(broken)))

    assert errors, "the schema accepted an unknown top-level key, so it is not really being applied"
    assert any(e.validator == "additionalProperties" and "'setings'" in e.message for e in errors)


def test_unknown_remote_reference_is_not_fetched(validator: Draft7Validator) -> None:
    elsewhere = validator.evolve(schema={"$ref": "https://example.invalid/other.schema.json"})
    with pytest.raises(Unresolvable):
        elsewhere.validate({})


def test_bot_subscribes_to_mentions_and_messages(manifest: dict[str, Any]) -> None:
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) >= SUBSCRIBED_EVENTS


def test_bot_scopes_cover_every_subscribed_event(manifest: dict[str, Any]) -> None:
    bot_scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(bot_scopes) == len(set(bot_scopes)), "duplicate bot scope"

    missing: dict[str, list[str]] = {}
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        reference = EVENTS_DIR / f"{event}.json"
        assert reference.is_file(), (
            f"no reference data for bot event {event!r}: a typo, or copy slack-api-ref events/{event}.json"
        )
        data = _load_json(reference)
        assert data["name"] == event
        required = [SCOPE_SPELLING_FIXES.get(scope, scope) for scope in data["scopes"]]
        assert required or event in ASSISTANT_EVENTS | SCOPELESS_EVENTS, f"{event}: no scopes listed in the reference"
        assert all(SCOPE_SHAPE.match(scope) for scope in required), f"{event}: odd scope name in {required}"
        absent = [scope for scope in required if scope not in bot_scopes]
        if absent:
            missing[event] = absent

    assert missing == {}


def test_the_assistant_pane_is_declared_with_its_events_and_scope(manifest: dict[str, Any]) -> None:
    view = manifest["features"]["assistant_view"]
    assert view["assistant_description"].strip()
    assert 0 < len(view["suggested_prompts"]) <= MAX_SUGGESTED_PROMPTS
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) >= ASSISTANT_EVENTS
    assert "assistant:write" in manifest["oauth_config"]["scopes"]["bot"]


def test_the_answer_buttons_can_reach_the_bot(manifest: dict[str, Any]) -> None:
    # Stop, feedback and Regenerate (and Approve / Deny) are block_actions, delivered only with interactivity on.
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_users_can_message_the_bot(manifest: dict[str, Any]) -> None:
    app_home = manifest["features"]["app_home"]
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is False


def test_the_home_tab_is_enabled_and_its_event_subscribed(manifest: dict[str, Any]) -> None:
    """bot/slack/listeners/home.py publishes the tab when it is opened; without both, people see no Home tab."""
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]


def test_bot_token_does_not_rotate(manifest: dict[str, Any]) -> None:
    # Settings accepts one static xoxb- token; with rotation on it would expire after 12 hours.
    assert manifest["settings"]["token_rotation_enabled"] is False


def test_the_slash_commands_match_the_tool_registry() -> None:
    """Generated from the registry: a tool added without `claude-slack-bot manifest --write` fails here."""
    from bot.slack.manifest import updated_manifest

    text = MANIFEST_PATH.read_text()
    assert updated_manifest(text) == text, "manifest.yml is out of date: run `claude-slack-bot manifest --write`"
    manifest = yaml.safe_load(text)
    declared = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert {"/claude-persona", "/claude-tools", "/claude-review", "/claude-summarize"} <= declared
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]


def test_the_install_asks_for_the_manifests_bot_scopes(manifest: dict[str, Any]) -> None:
    """The image has no manifest.yml, so the OAuth flow's list is a copy: it must not drift."""
    from bot.slack.oauth import MANIFEST_BOT_SCOPES

    assert list(MANIFEST_BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]


def test_the_documented_oauth_setup_is_a_valid_manifest(validator: Draft7Validator, manifest: dict[str, Any]) -> None:
    """What the comments in manifest.yml tell an operator to change for multi-workspace installs."""
    from bot.slack.oauth import REDIRECT_PATH

    assert f"https://YOUR-HOST{REDIRECT_PATH}" in MANIFEST_PATH.read_text()
    oauth = copy.deepcopy(manifest)
    oauth["oauth_config"]["redirect_urls"] = [f"https://bot.example.com{REDIRECT_PATH}"]
    oauth["settings"].update(socket_mode_enabled=False, org_deploy_enabled=True, token_rotation_enabled=True)
    oauth["settings"]["event_subscriptions"]["request_url"] = "https://bot.example.com/slack/events"
    oauth["settings"]["interactivity"]["request_url"] = "https://bot.example.com/slack/events"
    assert [e.message for e in _all_errors(validator.iter_errors(oauth))] == []
