"""Fake Amazon Bedrock, Google Vertex AI and Microsoft Foundry endpoints for Claude, at the wire.

Each is a :class:`FakeAnthropic` (same scripting, validation, recording and replies) that also answers its cloud's
paths, auth and framing, so one scripted fake serves every dialect and the SDK's own clients
(``AsyncAnthropicBedrock``, ``AsyncAnthropicVertex``, ``AsyncAnthropicFoundry``) can be pointed at it:

- Vertex: ``POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:streamRawPredict`` (SSE) and
  ``:rawPredict`` (JSON); ``…/models/count-tokens:rawPredict``. A bearer token; ``anthropic_version:
  vertex-2023-10-16`` (or the SDK's dated API version) in the body; the model in the path, never in the body.
  Point the client at ``fake.vertex_url``.
- Bedrock: ``POST /model/{id}/invoke`` (JSON) and ``/model/{id}/invoke-with-response-stream`` (AWS event-stream
  binary frames, each a ``chunk`` event holding base64 of one Messages stream event; stream errors are exception
  frames). ``anthropic_version: bedrock-2023-05-31`` (or the SDK's dated version) in the body, no ``model`` or
  ``stream``. Auth: a Bedrock API key (``Authorization: Bearer …``) or a SigV4 signature, recomputed and checked
  here with botocore. Errors are AWS-shaped (``{"message": …}`` and ``x-amzn-ErrorType``). Point the client at
  ``fake.base_url``.
- Foundry: the Messages API under ``/anthropic/v1/…``, the key in ``api-key`` / ``x-api-key``; no Models API.
  Point the client at ``fake.foundry_url``.

Like anthropic_api.py, this module imports nothing from the ``bot`` package.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from binascii import crc32
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.anthropic_api import FakeAnthropic, RecordedRequest, _Closing, _Invalid

__all__ = ["BEDROCK_VERSION", "VERTEX_VERSION", "FakeBedrock", "FakeFoundry", "FakeVertex", "event_stream_frame"]

VERTEX_VERSION = "vertex-2023-10-16"
_DIALECT = web.RequestKey("dialect", dict)  # the model and stream flag a cloud path carries
BEDROCK_VERSION = "bedrock-2023-05-31"
# anthropic 2.16 sends its own API version (e.g. "2026-10-21") in the body for every cloud; the clouds' documented
# values are the dated ones above. Either is accepted; a body without one is refused.
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
_VERTEX_PREFIX = "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{action}"

# Anthropic error type -> (HTTP status, Bedrock exception) for HTTP errors; stream errors use the member name.
_BEDROCK_ERRORS = {
    "overloaded_error": (503, "ServiceUnavailableException"),
    "rate_limit_error": (429, "ThrottlingException"),
    "api_error": (500, "InternalServerException"),
    "timeout_error": (408, "ModelTimeoutException"),
    "authentication_error": (403, "AccessDeniedException"),
    "permission_error": (403, "AccessDeniedException"),
    "not_found_error": (404, "ResourceNotFoundException"),
}


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value


def event_stream_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude (total length, headers length, CRC32 of both), string headers, payload,
    and a CRC32 of everything before it (the framing botocore.eventstream parses)."""
    header_bytes = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_bytes))
    prelude += struct.pack("!I", crc32(prelude) & 0xFFFFFFFF)
    message = prelude + header_bytes + payload
    return message + struct.pack("!I", crc32(message) & 0xFFFFFFFF)


def _stream_exception(error_type: str) -> str:
    name = _BEDROCK_ERRORS.get(error_type, (500, "InternalServerException"))[1]
    return name[0].lower() + name[1:]


class _EventStreamWriter:
    """Turns the SSE events FakeAnthropic writes into Bedrock's event-stream frames, on the same response."""

    def __init__(self, resp: web.StreamResponse) -> None:
        self._resp = resp

    async def write(self, sse: bytes) -> None:
        data = next(line[6:] for line in sse.decode().splitlines() if line.startswith("data: "))
        event = json.loads(data)
        if event["type"] == "ping":
            return  # Bedrock sends no pings
        if event["type"] == "error":
            headers = {
                ":message-type": "exception",
                ":exception-type": _stream_exception(event["error"]["type"]),
                ":content-type": "application/json",
            }
            await self._resp.write(
                event_stream_frame(headers, json.dumps({"message": event["error"]["message"]}).encode())
            )
            return
        if event["type"] == "message_stop":
            event["amazon-bedrock-invocationMetrics"] = {"inputTokenCount": 0, "outputTokenCount": 0}
        chunk = {"bytes": base64.b64encode(json.dumps(event).encode()).decode()}
        headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
        await self._resp.write(event_stream_frame(headers, json.dumps(chunk).encode()))

    async def write_eof(self) -> None:
        await self._resp.write_eof()


class FakeVertex(FakeAnthropic):
    """Vertex AI's rawPredict / streamRawPredict for Claude (see the module docstring)."""

    def __init__(
        self, *, project: str = "test-project", region: str = "us-east5", access_token: str = "vertex-token", **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.project, self.region, self.access_token = project, region, access_token

    @property
    def vertex_url(self) -> str:
        return f"{self.base_url}/v1"

    def _add_dialect_routes(self, app: web.Application) -> None:
        app.router.add_post(_VERTEX_PREFIX, self._handle_vertex)

    async def _handle_vertex(self, request: web.Request) -> web.StreamResponse:
        model, _, specifier = request.match_info["action"].rpartition(":")
        where = (request.match_info["project"], request.match_info["region"])
        if where != (self.project, self.region) or specifier not in ("rawPredict", "streamRawPredict"):
            return await self._handle_unknown(request)
        request[_DIALECT] = {"model": model, "stream": specifier == "streamRawPredict"}
        if model == "count-tokens":
            return await self._handle_count_tokens(request)
        return await self._handle_messages(request)

    async def _record(self, request: web.Request, into: list[RecordedRequest]) -> RecordedRequest:
        rec = await super()._record(request, into)
        dialect = request.get(_DIALECT)
        if dialect is None or rec.error is not None:
            return rec
        version = rec.body.pop("anthropic_version", None)
        if version != VERTEX_VERSION and not _API_VERSION.fullmatch(str(version)):
            rec.error = f"anthropic_version: must be {VERTEX_VERSION!r} in the body, got {version!r}"
        elif dialect["model"] != "count-tokens":
            if "model" in rec.body:
                rec.error = "model: Extra inputs are not permitted (Vertex takes the model in the URL)"
            elif bool(rec.body.get("stream")) != dialect["stream"]:
                rec.error = "stream: must match the method (streamRawPredict streams, rawPredict does not)"
            rec.body["model"] = dialect["model"]
        return rec

    def _check_auth(self, req: RecordedRequest) -> None:
        if not req.path.startswith("/v1/projects/"):
            super()._check_auth(req)
        elif req.headers.get("authorization") != f"Bearer {self.access_token}":
            raise _Invalid("Request had invalid authentication credentials.", 401, "authentication_error")


class FakeFoundry(FakeAnthropic):
    """Microsoft Foundry's Messages API for Claude under /anthropic/ (see the module docstring)."""

    @property
    def foundry_url(self) -> str:
        return f"{self.base_url}/anthropic/"

    def _add_dialect_routes(self, app: web.Application) -> None:
        app.router.add_post("/anthropic/v1/messages", self._handle_messages)
        app.router.add_post("/anthropic/v1/messages/count_tokens", self._handle_count_tokens)

    def _check_auth(self, req: RecordedRequest) -> None:
        if req.headers.get("api-key") != self.api_key and req.headers.get("x-api-key") != self.api_key:
            raise _Invalid("Access denied due to invalid subscription key.", 401, "authentication_error")


class FakeBedrock(FakeAnthropic):
    """Bedrock Runtime's InvokeModel / InvokeModelWithResponseStream for Claude (see the module docstring)."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        api_key: str = "bedrock-api-key",
        access_key_id: str = "AKIDFAKEBEDROCK",
        secret_access_key: str = "fake-secret-access-key",
        **kw: Any,
    ) -> None:
        super().__init__(api_key=api_key, **kw)
        self.region, self.access_key_id, self.secret_access_key = region, access_key_id, secret_access_key
        self.signed_requests = 0  # requests that passed the SigV4 check (the rest used the API key)

    def _add_dialect_routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model_id}/invoke", self._handle_invoke)
        app.router.add_post("/model/{model_id}/invoke-with-response-stream", self._handle_invoke)

    async def _handle_invoke(self, request: web.Request) -> web.StreamResponse:
        stream = request.path.endswith("/invoke-with-response-stream")
        request[_DIALECT] = {"model": request.match_info["model_id"], "stream": stream}
        return await self._handle_messages(request)

    async def _record(self, request: web.Request, into: list[RecordedRequest]) -> RecordedRequest:
        rec = await super()._record(request, into)
        dialect = request.get(_DIALECT)
        if dialect is None or rec.error is not None:
            return rec
        version = rec.body.pop("anthropic_version", None)
        rec.body.pop("anthropic_beta", None)  # betas travel in the body on Bedrock
        if version != BEDROCK_VERSION and not _API_VERSION.fullmatch(str(version)):
            rec.error = f"anthropic_version: must be {BEDROCK_VERSION!r} in the body, got {version!r}"
        elif "model" in rec.body or "stream" in rec.body:
            rec.error = "extraneous key [model] or [stream] is not permitted (Bedrock takes them from the URL)"
        rec.body["model"] = dialect["model"]
        rec.body["stream"] = dialect["stream"]
        rec.raw_path = request.raw_path  # type: ignore[attr-defined]  # what SigV4 signed
        return rec

    def _check_auth(self, req: RecordedRequest) -> None:
        if not req.path.startswith("/model/"):
            super()._check_auth(req)
            return
        auth = req.headers.get("authorization", "")
        if auth == f"Bearer {self.api_key}":
            return
        if not auth.startswith("AWS4-HMAC-SHA256 ") or not self._signature_ok(req, auth):
            raise _Invalid("The request signature we calculated does not match the signature you provided.", 403)
        self.signed_requests += 1

    def _signature_ok(self, req: RecordedRequest, auth: str) -> bool:
        """Recompute the SigV4 signature over the signed headers, path and body, as AWS would."""
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
        access_key, day, region, service, _ = fields["Credential"].split("/")
        if (access_key, region, service) != (self.access_key_id, self.region, "bedrock"):
            return False
        signed = fields["SignedHeaders"].split(";")
        headers = {name: req.headers.get(name, "") for name in signed}
        url = f"http://{req.headers.get('host')}{getattr(req, 'raw_path', req.path)}"
        aws = AWSRequest(method="POST", url=url, headers=headers, data=req.raw_body)
        aws.context["timestamp"] = req.headers.get("x-amz-date", "")
        if not aws.context["timestamp"].startswith(day):
            return False
        token = req.headers.get("x-amz-security-token") or None
        signer = SigV4Auth(Credentials(self.access_key_id, self.secret_access_key, token), "bedrock", self.region)
        expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
        return bool(expected == fields["Signature"])

    def _error_response(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: dict[str, str] | None = None,
        rec: RecordedRequest | None = None,
    ) -> web.Response:
        if rec is None or not rec.path.startswith("/model/"):
            return super()._error_response(status, error_type, message, headers, rec)
        status, exception = _BEDROCK_ERRORS.get(error_type, (status, "ValidationException"))
        rec.status = status
        amzn = {"x-amzn-ErrorType": f"{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        return web.json_response({"message": message}, status=status, headers={**amzn, **(headers or {})})

    async def _stream(self, request: web.Request, rec: RecordedRequest, reply: Any) -> web.StreamResponse:
        if not rec.path.startswith("/model/"):
            return await super()._stream(request, rec, reply)
        await self._sleep(getattr(reply, "first_byte_delay_s", 0.0))
        blocks, final = self._plan(rec, reply)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await resp.prepare(request)
        rec.status = 200
        self.active_streams += 1
        self.max_active_streams = max(self.max_active_streams, self.active_streams)
        try:
            writer: Any = _EventStreamWriter(resp)
            await self._emit(request, writer, reply, blocks, final, f"req_fake_{self._next_id()}", rec_of=rec)
        except (ConnectionError, _Closing):
            if request.transport is not None:
                request.transport.abort()
        finally:
            self.active_streams -= 1
        return resp
