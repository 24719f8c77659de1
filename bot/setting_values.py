"""Settings' plain values and errors, apart from the Settings class so each stays small and testable alone."""

from __future__ import annotations

import ipaddress

from pydantic import ValidationError


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1; a name other than localhost counts as not loopback (it may resolve anywhere)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def summary_channels(value: str) -> dict[str | None, str]:
    """Parse "C123" (the single token's workspace) or "T1:C123,T2:C456" (one channel per workspace)."""
    targets: dict[str | None, str] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        workspace, _, channel = part.rpartition(":")
        if not channel or (":" in part and not workspace):
            raise ValueError(f"expected CHANNEL or WORKSPACE:CHANNEL, got {part!r}")
        key = workspace or None
        if key in targets:
            raise ValueError(f"two channels for workspace {key or '(the bot token)'}")
        targets[key] = channel
    return targets


class SettingsError(Exception):
    """One line naming the setting that is wrong; never contains a secret's value."""


def describe_validation_error(error: ValidationError) -> str:
    """Turn pydantic's report into one line per setting, naming the variable but never echoing its value."""
    lines = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        reason = "missing" if item["type"] == "missing" else item["msg"]
        lines.append(f"{name}: {reason}")
    return "; ".join(lines)
