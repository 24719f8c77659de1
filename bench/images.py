"""Peak memory of preparing one large image: `python -m bench.images`.

Each case is generated into a temporary directory, then prepared by `bot.media.images.prepare_media` in a fresh
subprocess whose peak RSS (ru_maxrss) is reported, so one case's memory never hides another's. The baseline is a
subprocess that only imports the module and reads the file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "jpeg_108mp": ("JPEG", (12000, 9000)),  # a 108 MP phone photo (baseline JPEG)
    "png_8000x8000": ("PNG", (8000, 8000)),  # the largest image the API accepts
}

_MEASURE = """
import json, resource, sys, time
from bot.media.images import prepare_media
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
outcome = "refused"
if sys.argv[2] == "prepare":
    try:
        media = prepare_media(data, claimed_name=sys.argv[1])
        outcome = f"{media.media_type} {media.width}x{media.height}"
    except Exception as error:
        outcome = f"refused: {getattr(error, 'user_message', error)}"
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rss_mb": round(peak / 1024, 1), "seconds": round(seconds, 2), "outcome": outcome}))
"""

_GENERATE = """
import sys
from PIL import Image, ImageDraw
fmt, width, height, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
ImageDraw.Draw(img).ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=(200, 40, 40))
img.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 1}))
"""


def _run(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name, (fmt, (width, height)) in CASES.items():
            path = Path(folder) / f"{name}.{fmt.lower()}"
            started = time.perf_counter()
            _run(_GENERATE, fmt, str(width), str(height), str(path))
            generated = time.perf_counter() - started
            baseline = json.loads(_run(_MEASURE, str(path), "read"))
            measured = json.loads(_run(_MEASURE, str(path), "prepare"))
            print(
                f"{name}: {width}x{height} {fmt}, {path.stat().st_size / 1e6:.1f} MB file (made in {generated:.1f} s); "
                f"peak RSS {measured['peak_rss_mb']} MB (baseline {baseline['peak_rss_mb']} MB: import + read); "
                f"{measured['seconds']} s; {measured['outcome']}"
            )


if __name__ == "__main__":
    main()
