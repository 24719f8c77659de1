"""Slack's HTTP requests, checked before anything else looks at them: size, signature on the raw bytes, then shape.

Nothing a stranger sends is parsed, logged or counted under a label of its choosing until the signature proves it
came from Slack (https://api.slack.com/authentication/verifying-requests-from-slack): "v0=" + HMAC-SHA256 of
"v0:{X-Slack-Request-Timestamp}:{raw body}" with the signing secret, and a timestamp within five minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

log = logging.getLogger(__name__)

# Slack publishes no maximum request size (unverified). Its largest documented parts are a message's 40,000
# characters of text plus up to 50 blocks of at most 3,000 characters each (~200 KB), and a modal's 100 blocks in
# a view_submission: 1 MiB leaves room for those with escaping, and keeps a flood of junk from costing memory.
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was turned away: the HTTP status, a short plain-text body, and a bounded reason for metrics."""

    status: int
    text: str
    reason: str  # one of REJECTION_REASONS


REJECTION_REASONS = ("too_large", "bad_signature", "malformed")
TOO_LARGE = Rejection(413, "request body too large", "too_large")
BAD_SIGNATURE = Rejection(401, "invalid or missing Slack signature", "bad_signature")
MALFORMED = Rejection(400, "malformed request body", "malformed")


MAX_CLOCK_SKEW_S = 5 * 60  # Slack's advice: refuse timestamps more than five minutes away (replays)


class SlackVerifier:
    """Checks one request's raw bytes against the signing secret.

    Our own HMAC rather than slack_sdk's SignatureVerifier: that one decodes the body as UTF-8 first, so a body of
    invalid UTF-8 raised instead of failing the check.
    """

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        if not signing_secret:
            raise ValueError("a signing secret is needed to verify Slack's requests")
        self._secret = signing_secret.encode()
        self._clock = clock

    def verified(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            return False
        if abs(self._clock() - int(timestamp)) > MAX_CLOCK_SKEW_S:
            return False
        digest = hmac.new(self._secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(("v0=" + digest).encode(), signature.encode("utf-8", "replace"))


def parse_body(raw: bytes, content_type: str) -> dict[str, Any] | None:
    """The request as Bolt will read it, or None when Slack could not have sent it (only called once signed).

    JSON bodies (Events API) must be one object; form bodies are slash commands, or an interaction whose `payload`
    field is one JSON object. Bolt itself would crash with a 500 on the rest.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        if content_type.startswith("application/json"):
            value: Any = json.loads(text)
            return value if isinstance(value, dict) else None
        form = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
        if "payload" in form:
            payload = json.loads(form["payload"])
            return payload if isinstance(payload, dict) else None
        return form
    except ValueError:  # json.JSONDecodeError and parse_qsl's strict errors are ValueErrors
        return None


def check(
    verifier: SlackVerifier, raw: bytes, headers: Any, content_type: str
) -> tuple[dict[str, Any] | None, Rejection | None]:
    """(the parsed body, None) for a signed, well-formed request; (None, why not) otherwise. Logs one line."""
    signed = verifier.verified(raw, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature"))
    if not signed:
        log.info("rejected a Slack request: invalid or missing signature (%d bytes)", len(raw))
        return None, BAD_SIGNATURE
    body = parse_body(raw, content_type)
    if body is None:
        log.warning("rejected a signed Slack request with a malformed body (%d bytes, %s)", len(raw), content_type)
        return None, MALFORMED
    return body, None
