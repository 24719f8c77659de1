"""The design lives in the repository: docs/ARCHITECTURE.md answers "where does a change go", the README links it,
and nothing points at files outside the repository (a reader of a clone has only the clone)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
CHANGES = (
    "Add a slash command",
    "Add a tool",
    "Add a persona",
    "Change how answers are paced",
    "Add a model price",
    "Add a Slack surface",
    "Add a storage key",
    "Add a setting",
    "Add a language",
    "Add a Claude provider",
)
MODEL_FILES = (
    "slack_bolt/app/async_app.py",
    "slack_bolt/logger/messages.py",
    "listeners/<surface>/__init__.py",
    "arq/constants.py",
    "tests/test_fsm/storage/test_storages.py",
    "assert_never",
    "httpx/_transports/base.py",
)


def test_the_readme_links_the_architecture_document() -> None:
    assert "](docs/ARCHITECTURE.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("change", CHANGES)
def test_the_architecture_document_says_where_each_change_goes(change: str) -> None:
    assert f"| {change}" in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_each_convention_names_the_file_it_follows(model_file: str) -> None:
    assert model_file in DOC.read_text(encoding="utf-8")


def test_the_architecture_document_names_only_files_that_exist() -> None:
    text = DOC.read_text(encoding="utf-8")
    for word in text.replace("(", " ").replace(")", " ").replace("`", " ").split():
        if word.startswith(("bot/", "tests/", "docs/")) and "<" not in word and not word.startswith("tests/test_fsm/"):
            path = word.rstrip(".,;:'*")
            assert (ROOT / path).exists(), f"docs/ARCHITECTURE.md names {path}, which is not in the repository"


def test_nothing_points_outside_the_repository() -> None:
    needles = ("../" + "shared", "/" + "work/")  # split, so this file does not find itself
    offenders = []
    for folder in ("bot", "tests", "bench", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".md", ".yml", ".yaml", ".toml", ".txt"} and path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in needles if n in text]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    offenders += [f"README.md: {n}" for n in needles if n in readme]
    assert not offenders
