"""Turns uploaded bytes into an image or PDF the Messages API accepts: real type sniffed, limits checked, images shrunk.

Limits (Anthropic docs: https://docs.claude.com/en/docs/build-with-claude/vision and
https://docs.claude.com/en/docs/build-with-claude/pdf-support):
- images: PNG, JPEG, GIF, WebP; at most 5 MB each, measured on the *base64* text the API receives; the API
  downscales anything with a long edge over 1568 px, and recommends <= 1.15 MP, so we resize first: fewer
  tokens to pay for and less to upload.
- PDFs: 100 pages; the whole request is capped at 32 MB, and base64 adds a third, so we stop at 20 MB.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

from PIL import ExifTags, Image, ImageOps

from bot.core import texts
from bot.core.i18n import number, tr

SUPPORTED_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
PDF_MEDIA_TYPE = "application/pdf"
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # base64 length; raw bytes may be at most 3/4 of it (~3.75 MB)
MAX_LONG_EDGE_PX = 1568
MAX_PIXELS = 1_150_000
# The API's largest accepted image is 8000x8000; a PNG, GIF or WebP bigger than that is refused before decoding,
# which bounds memory (a 64 MP RGBA frame is ~256 MB) and defuses decompression bombs.
MAX_DECODE_PIXELS = 8000 * 8000
# A baseline JPEG is decoded in draft mode at 1/2, 1/4 or 1/8 scale by libjpeg itself, so phone photos of
# 108-200 MP cost a few megapixels of memory; up to this size they are read. Progressive JPEGs buffer every
# coefficient at full size while decoding (about 3 bytes a pixel), so above MAX_DECODE_PIXELS they are refused.
MAX_JPEG_DRAFT_PIXELS = 260_000_000
MAX_SOURCE_BYTES = 20 * 1024 * 1024  # an image upload bigger than this is refused unread (the fetcher's default cap)
PDF_MAX_BYTES = 20 * 1024 * 1024  # the request cap is 32 MB; 20 MB becomes ~26.7 MB of base64, leaving room
PDF_MAX_PAGES = 100
JPEG_QUALITY = 85
_FALLBACK_JPEG_QUALITIES = (70, 55, 40)  # tried in turn only when quality 85 is still over MAX_IMAGE_BYTES


# Pillow's own bomb guard is process-wide: warn above this many pixels, raise above twice as many.
Image.MAX_IMAGE_PIXELS = MAX_JPEG_DRAFT_PIXELS

_PIL_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
_LABELS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WebP"}
# What a broken file makes Pillow raise; struct.error and IndexError escape from some truncated headers.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError)


class UnsupportedFile(Exception):
    """A file Claude cannot be shown; `user_message` is a plain sentence safe to post back."""

    def __init__(self, user_message: str, *, reason: str = "") -> None:
        super().__init__(reason or user_message)
        self.user_message = user_message


class FileTooLarge(UnsupportedFile):
    """A readable kind of file, but over a size, pixel or page limit."""


@dataclass(frozen=True)
class PreparedMedia:
    """Bytes ready for an image or document block, with the facts a caller may want to mention."""

    kind: Literal["image", "pdf"]
    media_type: str
    data: bytes
    width: int | None
    height: int | None
    note: str | None  # something worth telling the user, e.g. that only one frame of an animation is shown
    pages: int | None = None  # PDFs only, when the page tree could be read


def sniff_media_type(data: bytes) -> str | None:
    """The media type the bytes really are (by magic number), since names and Slack mimetypes are claims."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return PDF_MEDIA_TYPE
    return None


def prepare_media(data: bytes, *, claimed_name: str = "") -> PreparedMedia:
    """Check what the bytes really are and make them fit the API; `claimed_name` only labels errors for logs."""
    media_type = sniff_media_type(data)
    if media_type == PDF_MEDIA_TYPE:
        return _prepare_pdf(data, claimed_name)
    if media_type is None:
        raise UnsupportedFile(
            f"{tr(texts.FILE_UNSUPPORTED)} {tr(texts.FILES_SUPPORTED)}",
            reason=f"{claimed_name!r}: content starts with {data[:8]!r}, not a supported image or PDF",
        )
    if len(data) > MAX_SOURCE_BYTES:
        raise FileTooLarge(
            tr(texts.IMAGE_TOO_LARGE, size=_mb(len(data)), limit=_mb(MAX_SOURCE_BYTES)),
            reason=f"{claimed_name!r}: {len(data)} bytes > {MAX_SOURCE_BYTES}",
        )
    try:
        return _prepare_image(data, media_type, claimed_name)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning is only raised when warnings are errors (as in tests); otherwise our own check catches it.
        raise _too_many_pixels(claimed_name, str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise UnsupportedFile(
            f"{tr(texts.IMAGE_DAMAGED)} {tr(texts.FILES_SUPPORTED)}",
            reason=f"{claimed_name!r}: {type(exc).__name__}: {exc}",
        ) from None


# ------------------------------------------------------------------------------------------ images


def _prepare_image(data: bytes, media_type: str, claimed_name: str) -> PreparedMedia:
    with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[media_type]]) as img:
        width, height = img.size
        _check_decodable(img, claimed_name)
        animated = bool(getattr(img, "is_animated", False))
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        rotated = orientation in (2, 3, 4, 5, 6, 7, 8)
        target = _target_size(width, height)
        if not animated and not rotated and target == (width, height) and _fits(len(data)):
            img.load()  # make sure it decodes before vouching for it
            return PreparedMedia("image", media_type, data, width, height, None)
        if img.format == "JPEG":
            img.draft(None, target)  # let libjpeg decode at 1/2, 1/4 or 1/8 scale: far less memory and time
        img.load()  # the first frame: `is_animated` seeks back to it
        frame = ImageOps.exif_transpose(img) if rotated else img
        source_mode = img.mode
        icc = img.info.get("icc_profile")
        frame = _normalised(frame)
        target = _target_size(*frame.size)
        if target != frame.size:
            frame = frame.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    icc_profile = icc if isinstance(icc, bytes) and frame.mode == source_mode else None
    prefer_png = frame.mode == "RGBA" or media_type == "image/gif"
    out, out_type, final = _encode_to_fit(frame, prefer_png=prefer_png, icc_profile=icc_profile)
    note = f"animated {_LABELS[media_type]}: only the first frame is shown" if animated else None
    return PreparedMedia("image", out_type, out, final.width, final.height, note)


def _check_decodable(img: Image.Image, claimed_name: str) -> None:
    """Refuse, before decoding, only what cannot be decoded cheaply (see MAX_JPEG_DRAFT_PIXELS)."""
    width, height = img.size
    pixels = width * height
    if pixels <= MAX_DECODE_PIXELS:
        return
    progressive = bool(img.info.get("progressive") or img.info.get("progression"))
    if img.format == "JPEG" and not progressive and pixels <= MAX_JPEG_DRAFT_PIXELS:
        return
    limit = MAX_JPEG_DRAFT_PIXELS if img.format == "JPEG" and not progressive else MAX_DECODE_PIXELS
    raise _too_many_pixels(claimed_name, f"{width}x{height} ({img.format}, progressive={progressive})", limit)


def _target_size(width: int, height: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio inside both the long-edge and the pixel-count limits."""
    scale = min(1.0, MAX_LONG_EDGE_PX / max(width, height), math.sqrt(MAX_PIXELS / (width * height)))
    if scale >= 1.0:
        return width, height
    return max(1, int(width * scale)), max(1, int(height * scale))  # rounding down keeps both limits


def _normalised(img: Image.Image) -> Image.Image:
    """L, RGB or RGBA (only when some pixel is see-through): the modes both encoders and resizing handle well."""
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        lowest_alpha = rgba.getchannel("A").getextrema()[0]
        return rgba if isinstance(lowest_alpha, (int, float)) and lowest_alpha < 255 else rgba.convert("RGB")
    if img.mode in ("L", "RGB"):
        return img
    return img.convert("L" if img.mode == "1" else "RGB")


def _fits(raw_len: int) -> bool:
    return 4 * math.ceil(raw_len / 3) <= MAX_IMAGE_BYTES  # the API measures the base64 text


def _encode(img: Image.Image, fmt: Literal["PNG", "JPEG"], quality: int, icc_profile: bytes | None) -> bytes:
    buf = io.BytesIO()
    extra = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "PNG":
        img.save(buf, "PNG", compress_level=6, **extra)
    else:
        img.save(buf, "JPEG", quality=quality, optimize=True, **extra)
    return buf.getvalue()


def _encode_to_fit(img: Image.Image, *, prefer_png: bool, icc_profile: bytes | None) -> tuple[bytes, str, Image.Image]:
    """PNG when asked and small enough, else JPEG at falling quality, then smaller sizes, until it fits."""
    if prefer_png:
        data = _encode(img, "PNG", 0, icc_profile)
        if _fits(len(data)):
            return data, "image/png", img
    if img.mode == "RGBA":  # JPEG has no alpha: show see-through parts on white, as Slack's light theme does
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        img, icc_profile = background, None
    while True:
        for quality in (JPEG_QUALITY, *_FALLBACK_JPEG_QUALITIES):
            data = _encode(img, "JPEG", quality, icc_profile)
            if _fits(len(data)):
                return data, "image/jpeg", img
        # Unreachable for real images at <= 1.15 MP, kept so the loop always ends in a valid answer.
        img = img.resize((max(1, img.width * 3 // 4), max(1, img.height * 3 // 4)), Image.Resampling.LANCZOS)


def _too_many_pixels(claimed_name: str, detail: str, limit: int = MAX_DECODE_PIXELS) -> FileTooLarge:
    return FileTooLarge(
        tr(
            texts.IMAGE_TOO_MANY_PIXELS,
            megapixels=number(limit // 1_000_000),
            jpeg_megapixels=number(MAX_JPEG_DRAFT_PIXELS // 1_000_000),
        ),
        reason=f"{claimed_name!r}: {detail}",
    )


def _mb(n: int) -> str:
    """Megabytes rounded up to a tenth, so a file just over a limit never reads as equal to it."""
    return tr(texts.MEGABYTES, value=number(math.ceil(n * 10 / (1024 * 1024)) / 10))


# ------------------------------------------------------------------------------------------ PDFs


def _prepare_pdf(data: bytes, claimed_name: str) -> PreparedMedia:
    if len(data) > PDF_MAX_BYTES:
        raise FileTooLarge(
            tr(texts.PDF_TOO_LARGE, size=_mb(len(data)), limit=_mb(PDF_MAX_BYTES)),
            reason=f"{claimed_name!r}: {len(data)} bytes > {PDF_MAX_BYTES}",
        )
    pages = count_pdf_pages(data)
    if pages is not None and pages > PDF_MAX_PAGES:
        raise FileTooLarge(
            tr(texts.PDF_TOO_MANY_PAGES, pages=number(pages), limit=number(PDF_MAX_PAGES)),
            reason=f"{claimed_name!r}: {pages} pages > {PDF_MAX_PAGES}",
        )
    return PreparedMedia("pdf", PDF_MEDIA_TYPE, data, None, None, None, pages)


# A PDF tokenizer just big enough to find page-tree dictionaries: dict brackets, names, strings, comments and
# streams (skipped whole). Numbers are read only right after /Count. Compressed object streams (PDF 1.5+) are
# inflated too, as that is where most modern writers put the page tree.
# The lookahead lets the regex engine skip bytes that cannot start a token (4x faster on long runs of numbers).
_PDF_TOKEN = re.compile(rb"(?=[<>(%/s])(?:<<|>>|\(|%|/[^\s()<>\[\]{}/%]*|(?<![A-Za-z])stream(?:\r\n|\n|\r))")
_COUNT_VALUE = re.compile(rb"\s*(\d+)(?![\d.])(?!\s+\d+\s+R)")  # a direct integer, not an `n 0 R` reference
_STRING_BYTE = re.compile(rb"[\\()]")
_EOL = re.compile(rb"[\r\n]")
# Bounds the work a hostile file can cause (~1 s of CPU); real files need far fewer steps outside their streams.
_PDF_STEP_BUDGET = 500_000
_PDF_INFLATE_BUDGET = 32 * 1024 * 1024  # total bytes inflated from object streams


@dataclass(slots=True)
class _Dict:
    type: bytes | None = None
    count: int | None = None
    flate: bool = False


@dataclass(slots=True)
class _PageScan:
    counts: list[int]
    page_objects: int = 0
    steps_left: int = _PDF_STEP_BUDGET
    inflate_left: int = _PDF_INFLATE_BUDGET


def count_pdf_pages(data: bytes) -> int | None:
    """Pages in a PDF from its page tree (largest /Count), else its /Type /Page objects; None if neither is found."""
    scan = _PageScan(counts=[])
    _scan_pdf(data, scan, nested=False)
    if scan.counts:
        return max(scan.counts)  # the root /Pages node counts every page; an older revision's root may too
    return scan.page_objects or None


def _scan_pdf(buf: bytes, scan: _PageScan, *, nested: bool) -> None:
    stack: list[_Dict] = []
    key: bytes | None = None
    last_closed: _Dict | None = None
    pos = 0
    while scan.steps_left > 0:
        m = _PDF_TOKEN.search(buf, pos)
        if m is None:
            return
        scan.steps_left -= 1
        token, pos = m.group(), m.end()
        closed, last_closed = last_closed, None
        if token == b"<<":
            stack.append(_Dict())
            key = None
        elif token == b">>":
            if stack:
                last_closed = d = stack.pop()
                if d.type == b"Pages" and d.count is not None:
                    scan.counts.append(d.count)
                elif d.type == b"Page":
                    scan.page_objects += 1
            key = None
        elif token == b"(":
            pos = _skip_string(buf, pos, scan)
        elif token == b"%":
            eol = _EOL.search(buf, pos)
            pos = eol.end() if eol else len(buf)
        elif token.startswith(b"stream"):
            end = buf.find(b"endstream", pos)
            if end < 0:
                return
            if not nested and closed is not None and closed.type == b"ObjStm" and closed.flate:
                _scan_object_stream(buf[pos:end], scan)
            pos = end + len(b"endstream")
        elif not stack:
            key = None  # a name outside any dictionary
        elif key == b"/Type":
            stack[-1].type = token[1:]
            key = None
        elif key == b"/Filter":
            stack[-1].flate = token == b"/FlateDecode"  # also `[/FlateDecode]`; filter chains are skipped
            key = None
        elif token == b"/Count":
            value = _COUNT_VALUE.match(buf, pos)
            if value is not None:
                stack[-1].count = int(value.group(1))
                pos = value.end()
            key = None
        else:
            key = token


def _skip_string(buf: bytes, pos: int, scan: _PageScan) -> int:
    """Past the end of a literal string (balanced parentheses, backslash escapes)."""
    depth = 1
    while depth and scan.steps_left > 0:
        scan.steps_left -= 1
        m = _STRING_BYTE.search(buf, pos)
        if m is None:
            return len(buf)
        pos = m.end()
        if m.group() == b"\\":
            pos += 1
        else:
            depth += 1 if m.group() == b"(" else -1
    return pos


def _scan_object_stream(raw: bytes, scan: _PageScan) -> None:
    if scan.inflate_left <= 0:
        return
    try:
        inflated = zlib.decompressobj().decompress(raw, scan.inflate_left)
    except zlib.error:
        return
    scan.inflate_left -= len(inflated)
    _scan_pdf(inflated, scan, nested=True)
