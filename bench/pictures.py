"""`python -m bench.pictures [--markdown FILE]`: the peak memory of preparing big input pictures.

Each picture is prepared for /animate (bot/media/input_image.py, as the bot does it) in a fresh
Python process, whose peak resident set (the kernel's high-water mark, VmHWM) is the figure:
the whole process, imports included, and the rise over the process just before preparing. The
pictures are made here with Pillow and pillow-heif. Not part of the tests: it measures, it does
not assert; the target (issue 13) is a 40 MP transparent PNG under 250 MB.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from bench import report

TARGET_MB = 250
KIB = 1024


@dataclass(frozen=True)
class Sample:
    label: str
    file_name: str
    make: object  # (Path) -> None: writes the picture


def _soft_sticker(path: Path) -> None:
    """8000x5000 RGBA (40 MP): colour gradients with a soft-edged see-through border, as a
    cut-out sticker or a render with transparency."""
    size = (8000, 5000)
    across = Image.linear_gradient("L").rotate(90).resize(size)
    down = Image.linear_gradient("L").resize(size)
    alpha = Image.radial_gradient("L").resize(size).point(lambda v: 255 if v < 150 else max(0, 255 - (v - 150) * 3))
    Image.merge("RGBA", (across, down, Image.new("L", size, 90), alpha)).save(path, "PNG", compress_level=1)


def _camera_jpeg(path: Path) -> None:
    """7300x5475 (40 MP) JPEG, as a high-end camera writes it."""
    size = (7300, 5475)
    across = Image.linear_gradient("L").rotate(90).resize(size)
    down = Image.linear_gradient("L").resize(size)
    Image.merge("RGB", (across, down, Image.new("L", size, 90))).save(path, "JPEG", quality=90)


def _deep_scan(path: Path) -> None:
    """8000x5000 (40 MP) 16-bit grey TIFF holding 12-bit values (0..4095)."""
    size = (8000, 5000)
    Image.linear_gradient("L").resize(size).point(lambda v: v * 16).convert("I;16").save(path, "TIFF")


def _iphone_heic(path: Path) -> None:
    """4032x3024 (12 MP) HEIC, an iPhone's photo size."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    size = (4032, 3024)
    across = Image.linear_gradient("L").rotate(90).resize(size)
    down = Image.linear_gradient("L").resize(size)
    Image.merge("RGB", (across, down, Image.new("L", size, 90))).save(path, "HEIF", quality=80)


SAMPLES = [
    Sample("40 MP transparent PNG (8000x5000 RGBA)", "sticker.png", _soft_sticker),
    Sample("40 MP JPEG (7300x5475)", "camera.jpg", _camera_jpeg),
    Sample("40 MP 16-bit grey TIFF (8000x5000)", "scan.tif", _deep_scan),
    Sample("12 MP iPhone HEIC (4032x3024)", "photo.heic", _iphone_heic),
]

# Run in the fresh process: prepare one picture and report its memory as JSON on stdout. The peak
# is the kernel's VmHWM, which starts afresh with the new program; ru_maxrss would not do here, as
# Linux carries it over from the parent (which holds the big pictures it just made) through exec.
_CHILD = """
import json, resource, sys, time
from pathlib import Path
from bot.media.input_image import prepare_input_image
from bot.media.picture_rules import VIDEO_FIRST_FRAME

def peak_kib():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

before = peak_kib()
started = time.perf_counter()
prepared = prepare_input_image(Path(sys.argv[1]), Path(sys.argv[2]), VIDEO_FIRST_FRAME, display_name=Path(sys.argv[1]).name)
seconds = time.perf_counter() - started
peak = peak_kib()
print(json.dumps({"before_kib": before, "peak_kib": peak, "seconds": seconds,
                  "sent": f"{prepared.format} {prepared.width}x{prepared.height}",
                  "changes": list(prepared.changes)}))
"""


def measure(picture: Path, work: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(picture), str(work)],
                            capture_output=True, text=True, check=True, timeout=300)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pictures", description=__doc__)
    parser.add_argument("--markdown", type=Path, help="append the results, as Markdown, to this file")
    args = parser.parse_args(argv)
    command = "python -m " + shlex.join(["bench.pictures", *(sys.argv[1:] if argv is None else argv)])

    print(f"Machine: {report.machine()}\n")
    rows = [["picture", "file (MB)", "sent as", "peak RSS (MB)", "rise while preparing (MB)", "time (s)"]]
    with tempfile.TemporaryDirectory(prefix="wan-bench-pictures-") as temp:
        folder = Path(temp)
        for sample in SAMPLES:
            path = folder / sample.file_name
            print(f"Making {sample.label}...", flush=True)
            sample.make(path)
            figures = measure(path, folder / "work")
            rows.append([
                sample.label,
                f"{path.stat().st_size / 1e6:.1f}",
                figures["sent"],
                f"{figures['peak_kib'] / KIB:.1f}",
                f"{(figures['peak_kib'] - figures['before_kib']) / KIB:.1f}",
                f"{figures['seconds']:.2f}",
            ])
            path.unlink()

    print()
    print(report.as_text(rows))
    sticker_peak = float(rows[1][3])
    verdict = "met" if sticker_peak < TARGET_MB else "missed"
    check = f"Target: a 40 MP transparent PNG peaks under {TARGET_MB} MB: {verdict} ({sticker_peak:.1f} MB)."
    print(f"\n{check}")
    if args.markdown:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        section = [f"## `{command}` ({when})", "", f"- Machine: {report.machine()}", "",
                   report.as_markdown(rows), "", f"- {check}", ""]
        with args.markdown.open("a") as out:
            out.write("\n" + "\n".join(section))
        print(f"Results appended to {args.markdown}")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)")
    raise SystemExit(code)
