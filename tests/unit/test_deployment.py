"""The container files say what operators rely on; there is no Docker engine here, so their shape is checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_is_multi_stage_runs_as_a_non_root_user_and_checks_its_health() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", dockerfile, flags=re.MULTILINE)
    assert stages == ["builder", "runtime"]
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "build-essential" not in runtime  # compilers stay in the builder
    user = re.search(r"^USER (\S+)", runtime, flags=re.MULTILINE)
    assert user is not None and not user.group(1).startswith(("0", "root"))
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    assert 'CMD ["python", "-m", "bot"]' in runtime


def test_compose_starts_the_bot_with_a_persistent_redis_it_waits_for() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    bot, redis = compose["services"]["bot"], compose["services"]["redis"]
    assert bot["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    volume = redis["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume: data outlives the container
    assert "healthcheck" in redis


def test_env_example_names_only_real_settings() -> None:
    from bot.settings import Settings

    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE)
    assert names and all(name.lower() in Settings.model_fields for name in names)
