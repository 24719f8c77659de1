"""Multi-workspace install: Bolt's OAuth flow (GET /slack/install, GET /slack/oauth_redirect) over our Redis stores.

- /slack/install sets the state cookie and redirects straight to Slack's authorize page (no intermediate page).
- /slack/oauth_redirect checks the state (same browser, issued by us, not used before, not expired), exchanges the
  code with oauth.v2.access, stores the installation, and cancels a pending purge if the workspace had uninstalled.
  A refusal is a short page that says what went wrong and how to start again; it never shows a code or token.
- Requests are authorized with the workspace's stored bot token; tokens that rotate are refreshed through
  `workspaces.SerializedTokenRotator`, one process at a time.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.error import BoltError
from slack_bolt.oauth.async_callback_options import AsyncCallbackOptions, AsyncFailureArgs, AsyncSuccessArgs
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from bot.core.errors import StorageUnavailable
from bot.core.workspaces import workspace_id
from bot.slack.workspaces import REFRESH_BEFORE_MINUTES, SerializedTokenRotator
from bot.storage.installations import TooManyInstallStates

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
STATE_EXPIRATION_S = 600  # Bolt's default: ten minutes from "Add to Slack" to coming back
# manifest.yml's oauth_config.scopes.bot, asked for at install unless SLACK_SCOPES says otherwise. The image has no
# manifest.yml, so they are repeated here; tests/unit/test_manifest.py keeps the two lists equal.
MANIFEST_BOT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "users:read",
    "channels:read",
    "groups:read",
    "im:read",
    "mpim:read",
    "commands",
    "files:read",
    "files:write",
)

TOO_MANY_INSTALLS = "Too many installs are in progress right now; please try again in a few minutes."
_START_AGAIN = f'Start again from <a href="{INSTALL_PATH}">{INSTALL_PATH}</a>.'
_FAILURES = {
    "access_denied": "The installation was cancelled in Slack, so nothing was installed.",
    "invalid_browser": (
        "This install was started in another browser, or its cookie expired or was blocked. "
        "Open the install link again in this browser."
    ),
    "invalid_state": "This install link has expired or has already been used.",
    "missing_code": "Slack did not send an authorization code, so nothing was installed.",
    "invalid_code": "Slack did not accept the authorization code (expired, or already used), so nothing was installed.",
    "storage_error": "Slack approved the installation, but it could not be saved just now. Please try again shortly.",
}


@dataclass(frozen=True)
class OAuthConfig:
    """Everything the install flow needs; bot/wiring fills it from Settings and the Redis stores."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: Sequence[str]
    redirect_uri: str | None
    authorize_url: str
    installations: AsyncInstallationStore
    states: AsyncOAuthStateStore
    rotator: SerializedTokenRotator  # refreshes rotating tokens, one process at a time
    on_installed: Callable[[str], Awaitable[None]]  # the workspace id of a (re)installation


def authorize_url_for(api_url: str) -> str:
    """Slack's authorize page on the Web API's host (https://slack.com/oauth/v2/authorize; GovSlack; tests)."""
    return str(URL(api_url).origin() / "oauth" / "v2" / "authorize")


class InstallFlow(AsyncOAuthFlow):
    """Bolt's flow, plus: a reinstall cancels the pending purge, and a Redis outage gets a page saying so."""

    def __init__(
        self, *, client: AsyncWebClient, settings: AsyncOAuthSettings, on_installed: Callable[[str], Awaitable[None]]
    ) -> None:
        super().__init__(client=client, settings=settings, logger=log)
        self._on_installed = on_installed

    async def handle_installation(self, request: AsyncBoltRequest) -> BoltResponse:
        try:
            return await super().handle_installation(request)
        except StorageUnavailable:  # the state could not be stored
            return _unavailable_page()
        except TooManyInstallStates:
            log.warning("install page: INSTALL_MAX_STATES live OAuth states reached; turning visitors away")
            return BoltResponse(status=429, body=TOO_MANY_INSTALLS, headers={"Content-Type": "text/plain"})

    async def handle_callback(self, request: AsyncBoltRequest) -> BoltResponse:
        try:
            return await super().handle_callback(request)
        except StorageUnavailable:  # the state could not be checked
            return _unavailable_page()

    async def store_installation(self, request: AsyncBoltRequest, installation: Installation) -> None:
        workspace = workspace_id(
            enterprise_id=installation.enterprise_id,
            team_id=installation.team_id,
            is_enterprise_install=installation.is_enterprise_install,
        )
        try:
            await super().store_installation(request, installation)
            await self._on_installed(workspace)
        except StorageUnavailable as error:
            raise BoltError("the installation could not be stored") from error
        log.info("installed in workspace %s", workspace)


def build_install_flow(
    client: AsyncWebClient, config: OAuthConfig
) -> tuple[InstallFlow, AsyncInstallationStoreAuthorize]:
    """The flow for the two GET routes, and the authorize step every Slack request goes through."""
    settings = AsyncOAuthSettings(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scopes=list(config.scopes),
        user_scopes=[],
        redirect_uri=config.redirect_uri,
        install_path=INSTALL_PATH,
        install_page_rendering_enabled=False,
        redirect_uri_path=REDIRECT_PATH,
        authorization_url=config.authorize_url,
        installation_store=config.installations,
        token_rotation_expiration_minutes=REFRESH_BEFORE_MINUTES,
        state_store=config.states,
        state_expiration_seconds=STATE_EXPIRATION_S,
        callback_options=AsyncCallbackOptions(success=_installed_page, failure=_refusal_page),
        logger=log,
    )
    # Built here rather than by Bolt so that token refreshes go to SLACK_API_URL through our client, one at a time.
    authorize = AsyncInstallationStoreAuthorize(
        logger=log,
        installation_store=config.installations,
        client_id=config.client_id,
        client_secret=config.client_secret,
        token_rotation_expiration_minutes=REFRESH_BEFORE_MINUTES,
        client=client,
    )
    authorize.token_rotator = config.rotator
    return InstallFlow(client=client, settings=settings, on_installed=config.on_installed), authorize


async def _installed_page(args: AsyncSuccessArgs) -> BoltResponse:
    return await args.default.success(args)


async def _refusal_page(args: AsyncFailureArgs) -> BoltResponse:
    """Bolt's response (status, and the state cookie cleared) with a page that says what happened."""
    log.info("install refused: %s", args.reason)
    response = await args.default.failure(args)
    what = _FAILURES.get(args.reason, "The installation did not complete, so nothing was installed.")
    response.body = _page(what, args.reason)
    return response


def _unavailable_page() -> BoltResponse:
    log.warning("install page unavailable: Redis is unreachable")
    what = "The installation service cannot reach its storage just now. Please try again in a minute."
    return BoltResponse(status=503, body=_page(what, "storage_unavailable"), headers={"Content-Type": "text/html"})


def _page(what: str, reason: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Not installed</title></head>'
        f'<body style="font-family: sans-serif; text-align: center; padding: 2em">'
        f"<h2>Claude was not installed</h2><p>{html.escape(what)}</p><p>{_START_AGAIN}</p>"
        f"<p><small>reason: {html.escape(reason)}</small></p></body></html>"
    )
