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


def _kubernetes() -> dict[str, dict[str, Any]]:
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes.yaml").read_text()))
    return {document["kind"]: document for document in documents}


def test_the_kubernetes_example_waits_for_health_outlasts_the_shutdown_grace_and_limits_disruption() -> None:
    from bot.settings import Settings

    manifest = _kubernetes()
    deployment, service, budget = manifest["Deployment"], manifest["Service"], manifest["PodDisruptionBudget"]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    assert deployment["spec"]["replicas"] >= 2 and env["REDIS_CLUSTER"] == "true"
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and ports[probe["port"]] == int(env["PORT"])
    assert "httpGet" not in container["livenessProbe"]  # a Redis outage must not restart every pod
    grace = float(env.get("SHUTDOWN_GRACE_S") or Settings.model_fields["shutdown_grace_s"].default)
    assert pod["spec"]["terminationGracePeriodSeconds"] > grace + 5
    assert "args" not in container and "command" not in container  # the image's `python -m bot` runs

    labels = pod["metadata"]["labels"]
    for selector in (deployment["spec"]["selector"]["matchLabels"], budget["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"].get("sessionAffinity", "None") == "None"  # no sticky sessions
    assert budget["apiVersion"] == "policy/v1"
    assert (
        budget["spec"].get("maxUnavailable", 0) >= 1 or budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    )
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


class _ComposeLoader(yaml.SafeLoader):
    """Compose's own tags (`!reset`) on top of YAML."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def test_compose_scales_behind_a_round_robin_load_balancer() -> None:
    scale = yaml.load((ROOT / "deploy" / "compose.scale.yml").read_text(), Loader=_ComposeLoader)
    bot, lb = scale["services"]["bot"], scale["services"]["lb"]
    assert bot["ports"] is None and bot["expose"] == ["3000"]  # no host port per replica, so --scale works
    assert lb["ports"] == ["3000:3000"] and "bot" in lb["depends_on"]
    lines = (ROOT / "deploy" / "nginx.conf").read_text().splitlines()
    directives = "\n".join(line.split("#", 1)[0] for line in lines)
    assert "bot:3000" in directives and "ip_hash" not in directives and "sticky" not in directives
    mount = lb["volumes"][0].split(":")
    assert (ROOT / "deploy" / mount[0]).resolve() == (ROOT / "deploy" / "nginx.conf").resolve()
