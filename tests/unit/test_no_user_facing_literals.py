"""Nothing the bot says to people is written outside bot/core/texts: an AST scan of bot/.

Flagged, anywhere in bot/ except the catalog, when the literal holds words (two or more in a row):
- a string (or f-string) given to a field Slack shows to people: `text=`, `title=`, `initial_comment=`,
  `status=`, `placeholder=`, `label=`, `alt_text=`, `accessibility_label=`, `loading_messages=`;
- the value of a Block Kit text object (`{"type": "mrkdwn" | "plain_text", "text": ...}`);
- the first argument of an error whose message people see (`BotError` and its kin), a `Notice`, a tool status;
- in bot/slack/, a module-level string constant (the way texts used to hide: `REFUSAL = "Only admins…"`).
Each exception is listed below with the reason; keep the list short.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
CATALOG_DIR = BOT / "core" / "texts"
WORDS = re.compile(r"[A-Za-z]{2,}[,.;:!?']?\s+[A-Za-z]{2,}")
SLACK_TEXT_FIELDS = {
    "text",
    "title",
    "initial_comment",
    "status",
    "placeholder",
    "label",
    "alt_text",
    "accessibility_label",
    "loading_messages",
    "note",
}
USER_FACING_ERRORS = {
    "BotError",
    "ModelUnavailable",
    "StorageUnavailable",
    "MediaRefused",
    "UnknownPersona",
    "CannotRegenerate",
    "FileRefused",
    "UnsupportedFile",
    "FileTooLarge",
    "Notice",
    "ToolRunning",
}
# Calls whose text is for Claude, not people: prompts and tool results (Claude answers in the asker's language).
FOR_CLAUDE = {"CommandPrompt", "ToolResultBlock", "TextBlock"}
# (path relative to the repo, the literal's first words): why it is not a text for people in Slack.
ALLOWED = {
    ("bot/server.py", "metrics need a bearer token"): "HTTP 401 body for a Prometheus scraper, not Slack",
    ("bot/slack/mrkdwn/__init__.py", "Your answer is shown in Slack"): "formatting guidance in Claude's system prompt",
    ("bot/slack/reader.py", "You are not a member"): "a ToolError: a tool result Claude reads and rephrases",
    ("bot/slack/reader.py", "That conversation is private"): "a ToolError: a tool result Claude reads and rephrases",
    ("bot/slack/manifest.py", "  # BEGIN slash commands"): "a marker comment in manifest.yml",
    ("bot/slack/manifest.py", "  # END slash commands"): "a marker comment in manifest.yml",
    ("bot/slack/oauth.py", "Start again from"): "the OAuth install pages: a browser, before any Slack user is known",
    ("bot/slack/oauth.py", "Too many installs"): "the OAuth install pages: a browser, before any Slack user is known",
    ("bot/core/personas.py", "What can you do?"): "default suggested prompts: persona content, like persona files",
}


def _static_text(node: ast.AST) -> str | None:
    """The literal text of a str constant or an f-string's constant parts; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = [_static_text(node.left), _static_text(node.right)]
        return " ".join(p for p in parts if p) or None
    return None


def _wordy(node: ast.AST) -> str | None:
    text = _static_text(node)
    return text if text is not None and WORDS.search(text) else None


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _findings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) not in FOR_CLAUDE:
            for keyword in node.keywords:
                if keyword.arg in SLACK_TEXT_FIELDS and (text := _wordy(keyword.value)):
                    found.append((node.lineno, text))
            if _call_name(node) in USER_FACING_ERRORS and node.args and (text := _wordy(node.args[0])):
                found.append((node.lineno, text))
        elif isinstance(node, ast.Dict):
            keys = {k.value: v for k, v in zip(node.keys, node.values, strict=True) if isinstance(k, ast.Constant)}
            kind = keys.get("type")
            is_text_object = isinstance(kind, ast.Constant) and kind.value in ("mrkdwn", "plain_text")
            if is_text_object and "text" in keys and (text := _wordy(keys["text"])):
                found.append((node.lineno, text))
    if path.is_relative_to(BOT / "slack"):
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and (text := _wordy(statement.value)):
                found.append((statement.lineno, text))
    return found


def test_no_sentence_for_people_is_written_outside_the_catalog() -> None:
    offending = []
    used_allowances = set()
    for path in sorted(BOT.rglob("*.py")):
        if path.is_relative_to(CATALOG_DIR):
            continue
        relative = path.relative_to(ROOT).as_posix()
        for line, text in _findings(path):
            allowance = next((key for key in ALLOWED if key[0] == relative and text.startswith(key[1])), None)
            if allowance is not None:
                used_allowances.add(allowance)
                continue
            offending.append(f"{relative}:{line}: {text[:80]!r}")
    assert offending == [], "move these into bot/core/texts (then extract, translate, compile):\n" + "\n".join(
        offending
    )
    assert used_allowances == set(ALLOWED), f"stale allowances: {set(ALLOWED) - used_allowances}"


def test_the_scan_catches_the_ways_texts_hide(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "async def f(respond, client, name):\n"
        "    await respond(text='Only admins can do this.', response_type='ephemeral')\n"
        "    await client.chat_postMessage(channel='C1', text=f'Hello {name}, welcome aboard')\n"
        "    block = {'type': 'plain_text', 'text': 'Set budgets now'}\n"
        "    raise ModelUnavailable('Claude is overloaded right now.')\n"
        "    ok = {'type': 'mrkdwn', 'text': f'<@{name}>'}\n"
        "    await respond(text=tr(NOT_ALLOWED))\n"
    )
    assert sorted(line for line, _ in _findings(sample)) == [2, 3, 4, 5]
