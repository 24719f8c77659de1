"""bot.media.images: real types from bytes, images shrunk to the API's limits, PDFs checked, hostile input refused."""

from __future__ import annotations

import base64
import contextlib
import io
import random
import struct
import warnings
import zlib

import pytest
from PIL import Image

from bot.core import texts
from bot.core.i18n import tr
from bot.media.images import (
    MAX_IMAGE_BYTES,
    MAX_JPEG_DRAFT_PIXELS,
    MAX_LONG_EDGE_PX,
    MAX_PIXELS,
    PDF_MAX_BYTES,
    PDF_MAX_PAGES,
    FileTooLarge,
    UnsupportedFile,
    count_pdf_pages,
    prepare_media,
    sniff_media_type,
)

RED, BLUE = (255, 0, 0), (0, 0, 255)

# ------------------------------------------------------------------------------------------ builders


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    """Left half one colour, right half another: shows which way an image was turned."""
    img = Image.new("RGB", size, left)
    img.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return img


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def close_to(pixel: object, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header and carries almost no pixel data: a decompression bomb's opening."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def pdf(pages: int, *, compressed: bool = False) -> bytes:
    """A small valid PDF with `pages` blank pages; `compressed` puts the page tree in a FlateDecode object stream."""
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} /MediaBox [0 0 612 792] >>",
        *["<< /Type /Page /Parent 2 0 R /Resources << >> >>"] * pages,
    ]
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets: list[int] = []
    if not compressed:
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{number} 0 obj\n{body}\nendobj\n".encode()
        xref_at = len(out)
        out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
        out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
        out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
        return out
    # PDF 1.5 style: every object inside one compressed object stream (the cross-reference stream is left out;
    # readers rebuild it, and only the page count matters here).
    header, body, pos = [], b"", 0
    for number, text in enumerate(objects, start=1):
        header.append(f"{number} {pos}")
        body += text.encode() + b"\n"
        pos = len(body)
    first = (" ".join(header) + "\n").encode()
    packed = zlib.compress(first + body)
    stream_dict = (
        f"<< /Type /ObjStm /N {len(objects)} /First {len(first)} /Filter /FlateDecode /Length {len(packed)} >>"
    )
    out += f"{len(objects) + 1} 0 obj\n{stream_dict}\nstream\n".encode() + packed + b"\nendstream\nendobj\n%%EOF\n"
    return out


# ------------------------------------------------------------------------------------------ sniffing


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_sniff_reads_the_magic_bytes(fmt: str, media_type: str) -> None:
    assert sniff_media_type(encode(Image.new("RGB", (4, 4)), fmt)) == media_type


@pytest.mark.parametrize(
    "data", [b"", b"hello, world", b"RIFF\0\0\0\0WAVEfmt ", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"\xff\xd8"]
)
def test_sniff_knows_nothing_else(data: bytes) -> None:
    assert sniff_media_type(data) is None


def test_sniff_pdf() -> None:
    assert sniff_media_type(pdf(1)) == "application/pdf"


# ------------------------------------------------------------------------------------------ images


def test_small_png_passes_through_byte_identical() -> None:
    data = encode(halves((64, 48), RED, BLUE), "PNG")
    media = prepare_media(data, claimed_name="dot.png")
    assert (media.kind, media.media_type, media.width, media.height, media.note) == ("image", "image/png", 64, 48, None)
    assert media.data == data


def test_type_comes_from_the_bytes_not_the_name() -> None:
    data = encode(Image.new("RGB", (10, 10), RED), "JPEG")
    media = prepare_media(data, claimed_name="photo.png")
    assert media.media_type == "image/jpeg" and media.data == data


def test_large_jpeg_is_downscaled_within_limits_keeping_aspect_ratio() -> None:
    data = encode(halves((4000, 3000), RED, BLUE), "JPEG", quality=90)
    media = prepare_media(data, claimed_name="camera.jpg")
    assert media.kind == "image" and media.media_type == "image/jpeg"
    assert media.width is not None and media.height is not None
    assert max(media.width, media.height) <= MAX_LONG_EDGE_PX
    assert media.width * media.height <= MAX_PIXELS
    assert abs(media.width / media.height - 4 / 3) < 0.01
    assert len(base64.b64encode(media.data)) <= MAX_IMAGE_BYTES
    img = decoded(media.data)
    assert img.size == (media.width, media.height)
    assert close_to(img.getpixel((5, 5)), RED) and close_to(img.getpixel((media.width - 5, 5)), BLUE)


def test_small_png_with_alpha_passes_through() -> None:
    img = Image.new("RGBA", (40, 30), (*RED, 255))
    img.paste((0, 0, 0, 0), (0, 0, 20, 30))
    data = encode(img, "PNG")
    assert prepare_media(data).data == data


def test_large_png_with_alpha_stays_png_and_keeps_its_transparency() -> None:
    img = Image.new("RGBA", (2400, 1200), (*BLUE, 255))
    img.paste((0, 0, 0, 0), (0, 0, 1200, 1200))
    media = prepare_media(encode(img, "PNG", compress_level=1))
    assert media.media_type == "image/png"
    out = decoded(media.data)
    assert out.mode == "RGBA" and max(out.size) <= MAX_LONG_EDGE_PX
    assert out.getpixel((5, 5)) == (0, 0, 0, 0)
    assert close_to(out.getpixel((out.width - 5, 5)), BLUE)


def test_large_png_whose_alpha_is_all_opaque_becomes_jpeg() -> None:
    media = prepare_media(encode(Image.new("RGBA", (2400, 1200), (*RED, 255)), "PNG", compress_level=1))
    assert media.media_type == "image/jpeg"
    assert close_to(decoded(media.data).getpixel((10, 10)), RED)


def test_png_with_alpha_over_the_byte_cap_falls_back_to_jpeg() -> None:
    noise = random.Random(7).randbytes(1000 * 1000 * 4)  # incompressible: ~4 MB of PNG, over the base64 cap
    data = encode(Image.frombytes("RGBA", (1000, 1000), noise), "PNG", compress_level=1)
    assert len(base64.b64encode(data)) > MAX_IMAGE_BYTES
    media = prepare_media(data)
    assert media.media_type == "image/jpeg" and (media.width, media.height) == (1000, 1000)
    assert len(base64.b64encode(media.data)) <= MAX_IMAGE_BYTES
    assert decoded(media.data).mode == "RGB"


def test_animated_gif_becomes_its_first_frame_with_a_note() -> None:
    frames = [Image.new("RGB", (60, 40), RED), Image.new("RGB", (60, 40), BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    media = prepare_media(data, claimed_name="party.gif")
    assert media.media_type == "image/png" and (media.width, media.height) == (60, 40)
    assert media.note == "animated GIF: only the first frame is shown"
    out = decoded(media.data)
    assert getattr(out, "n_frames", 1) == 1 and close_to(out.getpixel((30, 20)), RED, tolerance=0)


def test_animated_webp_becomes_its_first_frame_with_a_note() -> None:
    frames = [Image.new("RGB", (60, 40), RED), Image.new("RGB", (60, 40), BLUE)]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    media = prepare_media(data)
    assert media.note == "animated WebP: only the first frame is shown"
    assert close_to(decoded(media.data).getpixel((30, 20)), RED)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: turn 90 degrees clockwise to display
    data = encode(halves((200, 100), RED, BLUE), "JPEG", exif=exif.tobytes())
    media = prepare_media(data, claimed_name="phone.jpg")
    assert (media.width, media.height) == (100, 200)
    out = decoded(media.data)
    assert out.size == (100, 200)
    assert close_to(out.getpixel((50, 10)), RED) and close_to(out.getpixel((50, 190)), BLUE)
    assert out.getexif().get(0x0112) is None  # nothing left for a viewer to rotate a second time


def test_text_claiming_to_be_png_is_unsupported() -> None:
    with pytest.raises(UnsupportedFile) as info:
        prepare_media(b"just some notes, honestly\n", claimed_name="notes.png")
    assert not isinstance(info.value, FileTooLarge)
    assert info.value.user_message.endswith(tr(texts.FILES_SUPPORTED))


def test_truncated_image_is_unsupported_not_a_crash() -> None:
    data = encode(halves((400, 300), RED, BLUE), "PNG")
    with pytest.raises(UnsupportedFile, match="OSError"):
        prepare_media(data[: len(data) // 2])


def test_decompression_bomb_is_refused_without_decoding() -> None:
    with pytest.raises(UnsupportedFile) as info:
        prepare_media(png_header_only(50_000, 50_000), claimed_name="bomb.png")
    assert isinstance(info.value, FileTooLarge) and "megapixels" in info.value.user_message


@pytest.mark.parametrize("warning_action", ["error", "ignore"])
def test_image_just_over_the_pixel_limit_is_refused_whatever_the_warning_filter(warning_action: str) -> None:
    """9000x8000 only makes Pillow warn; the module's own check must refuse it even when warnings are ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter(warning_action, Image.DecompressionBombWarning)  # type: ignore[arg-type]
        with pytest.raises(FileTooLarge):
            prepare_media(png_header_only(9000, 8000))


def test_oversized_image_bytes_are_refused_unread() -> None:
    with pytest.raises(FileTooLarge, match="bytes"):
        prepare_media(b"\x89PNG\r\n\x1a\n" + bytes(21 * 1024 * 1024))


# ------------------------------------------------------------------------------------------ PDFs


def test_small_pdf_passes_unchanged() -> None:
    data = pdf(2)
    media = prepare_media(data, claimed_name="report.pdf")
    assert (media.kind, media.media_type, media.width, media.height) == ("pdf", "application/pdf", None, None)
    assert media.data == data and media.pages == 2


def test_pages_are_counted_inside_compressed_object_streams() -> None:
    data = pdf(3, compressed=True)
    assert b"/Pages" not in data
    assert count_pdf_pages(data) == 3


def test_pages_are_counted_in_a_pdf_from_another_writer() -> None:
    pages = [Image.new("RGB", (50, 70), colour) for colour in (RED, BLUE, RED, BLUE)]
    data = encode(pages[0], "PDF", save_all=True, append_images=pages[1:])
    assert prepare_media(data).pages == 4


def test_page_count_ignores_outline_counts_and_strings() -> None:
    data = pdf(2).replace(
        b"/Pages 2 0 R >>",
        b"/Pages 2 0 R /Outlines << /Count 500 >> /Title (a (nested) \\) /Type /Pages /Count 900) >>",
    )
    assert count_pdf_pages(data) == 2


def test_pdf_with_too_many_pages_is_too_large() -> None:
    with pytest.raises(FileTooLarge) as info:
        prepare_media(pdf(PDF_MAX_PAGES + 1, compressed=True))
    assert info.value.user_message == f"That PDF has {PDF_MAX_PAGES + 1} pages; I can read PDFs of up to 100 pages."


def test_pdf_over_the_byte_limit_is_too_large() -> None:
    with pytest.raises(FileTooLarge) as info:
        prepare_media(b"%PDF-1.7\n" + bytes(PDF_MAX_BYTES))
    assert info.value.user_message == "That PDF is 20.1 MB; I can read PDFs up to 20 MB."


def test_pdf_without_a_readable_page_tree_is_left_to_the_api() -> None:
    media = prepare_media(b"%PDF-1.4\n%%EOF\n")
    assert media.kind == "pdf" and media.pages is None


@pytest.mark.parametrize(
    ("fmt", "progressive", "accepted"),
    [("JPEG", False, True), ("JPEG", True, False), ("PNG", False, False)],
)
def test_photos_over_the_full_decode_limit_are_read_in_draft_mode_when_that_is_cheap(
    monkeypatch: pytest.MonkeyPatch, fmt: str, progressive: bool, accepted: bool
) -> None:
    """A baseline JPEG over the full-decode limit is decoded at reduced scale (phones make 108-200 MP photos);
    a progressive JPEG or a PNG that big cannot be decoded cheaply and is refused in one sentence."""
    import bot.media.images as images

    monkeypatch.setattr(images, "MAX_DECODE_PIXELS", 1_000_000)  # the same rule, at a size a unit test can afford
    buf = io.BytesIO()
    extra = {"progressive": True} if progressive else {}
    halves((2400, 1800), RED, BLUE).save(buf, fmt, **extra)
    if accepted:
        media = prepare_media(buf.getvalue(), claimed_name="photo.jpg")
        assert media.width is not None and media.height is not None
        assert media.width * media.height <= MAX_PIXELS and media.width == 1238
    else:
        with pytest.raises(FileTooLarge) as info:
            prepare_media(buf.getvalue(), claimed_name="big")
        assert "too large for me to open" in info.value.user_message and "\n" not in info.value.user_message


def test_a_200_megapixel_jpeg_header_is_within_the_draft_limit() -> None:
    assert MAX_JPEG_DRAFT_PIXELS >= 16320 * 12240  # a 200 MP phone sensor's full frame


def test_concurrent_decodes_are_bounded_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from bot.media import preparer as module

    running, peak, lock = [0], [0], threading.Lock()

    def slow_prepare(data: bytes, *, claimed_name: str = "") -> object:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        raise module.UnsupportedFile("no")

    monkeypatch.setattr(module, "prepare_media", slow_prepare)
    preparer = module.PillowMediaPreparer(decode_concurrency=2)
    threads = [threading.Thread(target=_swallow, args=(preparer,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2


def _swallow(preparer: object) -> None:
    from bot.core.errors import MediaRefused

    with contextlib.suppress(MediaRefused):
        preparer.prepare(b"x", "x")  # type: ignore[attr-defined]
