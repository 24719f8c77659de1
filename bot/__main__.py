"""Entry point: `claude-slack-bot` / `python -m bot` loads settings, sets up logging and serves."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from bot import logs
from bot.server import Service
from bot.settings import PROVIDER_NAMES, Settings, SettingsError, load_settings
from bot.wiring import Bot

log = logging.getLogger("bot")


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or `stop`): Socket Mode when SLACK_APP_TOKEN is set, HTTP mode otherwise."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    service = Service(settings)
    await service.start()
    _freeze_startup_heap()
    background = []
    if settings.weekly_summary_channel:
        background.append(asyncio.create_task(_weekly_summaries(service.bot, settings.weekly_summaries())))
    try:
        await stop.wait()
    finally:
        for task in background:
            task.cancel()
        await service.shutdown()


def _freeze_startup_heap() -> None:
    """Keep the objects loaded at start-up out of every later garbage collection.

    The imports (Anthropic and Slack SDKs, pydantic models) leave ~250,000 long-lived objects, and each full
    collection walked them all: ~140 ms with the event loop stopped, which showed up as 150-220 ms acks under
    load. Collect once, then freeze what is left; later collections only walk what the bot allocates.
    """
    gc.collect()
    gc.freeze()


async def _weekly_summaries(bot: Bot, channels: dict[str | None, str], *, every_s: float = 3600.0) -> None:
    """Hourly, try to post last week's usage to each workspace's channel, as that workspace's bot; the ledger's
    once-per-week claim keeps it to one post per workspace per week."""
    from datetime import UTC, datetime

    from bot.slack.weekly_summary import post_weekly_summary
    from bot.slack.workspaces import own_workspace

    while True:
        for workspace, channel in channels.items():
            try:
                if workspace is None:  # the single bot token's own workspace
                    workspace = await own_workspace(bot.app.client)
                client = await bot.workspaces.client(workspace)
                await post_weekly_summary(bot.slack_deps.usage, client, channel, workspace, datetime.now(UTC).date())
            except Exception:
                log.exception("weekly usage summary for %s failed; will try again", workspace or "this workspace")
        await asyncio.sleep(every_s)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="claude-slack-bot", description="Claude in Slack.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="serve Slack (default)")
    manifest = commands.add_parser(
        "manifest", help="check (or --write) manifest.yml's slash commands against the tools"
    )
    manifest.add_argument("--write", action="store_true", help="rewrite the generated block instead of checking it")
    manifest.add_argument("--path", default="manifest.yml")
    chat = commands.add_parser("chat", help="talk to a persona in the terminal, without Slack")
    chat.add_argument("--persona", default=None, help="persona name (default: DEFAULT_PERSONA)")
    chat.add_argument("--session", default=None, help="resume an earlier terminal conversation by its id")
    chat.add_argument(
        "--provider",
        default=None,
        choices=PROVIDER_NAMES,
        help="talk through this one provider instead of the CLAUDE_PROVIDERS chain (checks its credentials)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "manifest":  # needs no settings: the command list comes from the tool registry
        from pathlib import Path

        from bot.slack.manifest import check_or_write

        if check_or_write(Path(args.path), write=args.write):
            return 0
        print(f"{args.path} is out of date: run `claude-slack-bot manifest --write`", file=sys.stderr)
        return 1
    try:
        settings = load_settings(for_slack=args.command in (None, "run"), provider=getattr(args, "provider", None))
    except SettingsError as error:
        print(f"claude-slack-bot: cannot start: {error}", file=sys.stderr)
        return 2
    if args.command == "chat":
        from bot.terminal import chat

        level = "WARNING" if settings.log_level.upper() == "INFO" else settings.log_level
        logs.configure(level, fmt=settings.log_format, message_text=settings.log_message_text)
        return _run_reporting_setup_errors(
            chat(settings, args.persona or settings.default_persona, session=args.session, provider=args.provider)
        )
    logs.configure(settings.log_level, fmt=settings.log_format, message_text=settings.log_message_text)
    return _run_reporting_setup_errors(serve(settings))


def _run_reporting_setup_errors(main_coroutine: Coroutine[Any, Any, int | None]) -> int:
    """A set-up problem found while starting (no usable persona, say) is one line and exit code 2, not a traceback."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(main_coroutine) or 0
        return 0
    except SettingsError as error:
        print(f"claude-slack-bot: cannot start: {error}", file=sys.stderr)
        return 2


__all__ = ["Bot", "main", "serve"]

if __name__ == "__main__":
    sys.exit(main())
