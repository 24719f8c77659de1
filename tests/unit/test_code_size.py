"""No function over 60 lines and no module over 450 lines in bot/: small units a newcomer reads at once.

Measured with ast (a function's lines run from its `def` (or first decorator) to its last line, docstring included;
a module's lines are its physical lines), so the rule stays true as the code grows.
"""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 450

# Offenders allowed, each with its length as a ceiling. Empty since the split of Replies, build_bot, Metrics and
# Settings: keep it so (a new entry needs a reason in its commit).
KNOWN_LONG_FUNCTIONS: dict[str, int] = {}
KNOWN_LONG_MODULES: dict[str, int] = {}


class _Functions(ast.NodeVisitor):
    """Every function and method with its qualified name (Class.method) and its length in lines."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.scope: list[str] = []
        self.lengths: dict[str, int] = {}

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        name = f"{self.module}:{'.'.join([*self.scope, node.name])}"
        self.lengths[name] = max(self.lengths.get(name, 0), (node.end_lineno or node.lineno) - first + 1)
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function


def _modules() -> list[Path]:
    return sorted(BOT.rglob("*.py"))


def _function_lengths() -> dict[str, int]:
    lengths: dict[str, int] = {}
    for path in _modules():
        visitor = _Functions(str(path.relative_to(BOT.parent)))
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        lengths.update(visitor.lengths)
    return lengths


def _module_lengths() -> dict[str, int]:
    return {str(p.relative_to(BOT.parent)): len(p.read_text(encoding="utf-8").splitlines()) for p in _modules()}


def _over(lengths: dict[str, int], limit: int, known: dict[str, int]) -> dict[str, int]:
    """Names over the limit that are not allowed to be, or have grown past the length they had."""
    return {name: n for name, n in lengths.items() if n > limit and n > known.get(name, limit)}


def test_no_function_in_bot_is_over_60_lines() -> None:
    over = _over(_function_lengths(), MAX_FUNCTION_LINES, KNOWN_LONG_FUNCTIONS)
    assert not over, f"split these functions (over {MAX_FUNCTION_LINES} lines): {over}"


def test_no_module_in_bot_is_over_450_lines() -> None:
    over = _over(_module_lengths(), MAX_MODULE_LINES, KNOWN_LONG_MODULES)
    assert not over, f"split these modules (over {MAX_MODULE_LINES} lines): {over}"


def test_the_size_check_sees_a_long_function_and_a_long_module() -> None:
    source = "class A:\n    def f(self):\n" + "        x = 1\n" * 70
    visitor = _Functions("m.py")
    visitor.visit(ast.parse(source))
    assert visitor.lengths == {"m.py:A.f": 71}
    assert _over({"m.py:A.f": 71, "m.py:g": 60}, MAX_FUNCTION_LINES, {}) == {"m.py:A.f": 71}
    assert _over({"bot/core/replies.py": 535}, MAX_MODULE_LINES, KNOWN_LONG_MODULES) == {"bot/core/replies.py": 535}
