"""README.md gives exactly two set-up commands, and CI runs exactly the test one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_one_run_and_one_test_command() -> None:
    run, test = setup_commands()
    assert run.endswith("claude-slack-bot")
    assert test.endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = setup_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines
