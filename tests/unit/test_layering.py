"""The layering rules of docs/ARCHITECTURE.md, read from the imports (ast), so they stay true as the code changes.

- bot/core imports nothing of Slack, the Anthropic SDK, Redis or aiohttp, nor any adapter of ours.
- Listeners are routing tables: nothing imports a listener module except listeners/__init__.py (register_all).
- SlackDeps lives apart from the app and the listeners, so naming its type creates no import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "bot"
LISTENERS = "bot.slack.listeners"
CORE_MUST_NOT_IMPORT = ("slack_bolt", "slack_sdk", "anthropic", "redis", "aiohttp", "bot.slack", "bot.storage",
                        "bot.llm", "bot.web", "bot.media", "bot.wiring", "bot.server")  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at run time or for type checking, with `from x import y` also as `x.y`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_core_imports_no_adapter_and_no_driver() -> None:
    offenders = {
        _module_name(path): sorted(n for n in _imports(path) if any(_under(n, p) for p in CORE_MUST_NOT_IMPORT))
        for path in _files(BOT / "core")
    }
    assert not {module: names for module, names in offenders.items() if names}


def test_nothing_imports_a_listener_module_except_register_all() -> None:
    listener_modules = {_module_name(p) for p in _files(BOT / "slack" / "listeners")} - {LISTENERS}
    offenders = {}
    for path in _files(BOT):
        module = _module_name(path)
        if module == LISTENERS:
            continue  # register_all imports each listener module to call its register()
        used = sorted(n for n in _imports(path) if n in listener_modules)
        if used:
            offenders[module] = used
    assert not offenders, f"listener modules only register handlers; move what these use out of them: {offenders}"


def test_every_listener_module_registers_its_handlers() -> None:
    for path in _files(BOT / "slack" / "listeners"):
        if path.name != "__init__.py":
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
            assert "register" in names, f"{path.name} has no register(app, deps)"


def test_slack_deps_imports_neither_the_app_nor_a_listener() -> None:
    used = _imports(BOT / "slack" / "deps.py")
    assert not [n for n in used if _under(n, LISTENERS) or _under(n, "bot.slack.app")]
