"""``casewatch evaluate --report`` renders in a real browser: headless Chromium draws the charts."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.conftest import BUNDLED_LOG, casewatch_command, casewatch_env

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
WIDTH, HEIGHT = 1200, 1600

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it)"),
]


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> bytearray:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            upper_left = previous[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + _paeth(left, up, upper_left)) & 0xFF
    return line


def decode_png(data: bytes) -> tuple[int, int, list[bytearray]]:
    """Width, height and RGB(A) rows of an 8-bit non-interlaced PNG, with the standard library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp + 1
    rows: list[bytearray] = []
    previous = bytearray(width * bpp)
    for y in range(height):
        line = bytearray(raw[y * stride + 1 : (y + 1) * stride])
        previous = _unfilter(raw[y * stride], line, previous, bpp)
        rows.append(previous)
    return width, height, rows if bpp == 3 else _drop_alpha(rows)


def _drop_alpha(rows: list[bytearray]) -> list[bytearray]:
    return [bytearray(b for i, b in enumerate(r) if i % 4 != 3) for r in rows]


def test_the_report_renders_with_every_chart_drawn(tmp_path: Path, model_path: Path) -> None:
    report = tmp_path / "report.html"
    result = subprocess.run(
        casewatch_command(
            "evaluate", str(BUNDLED_LOG), "--model", str(model_path),
            "--skip-fraction", "0.5", "--report", str(report),
        ),
        env=casewatch_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = report.read_text()
    assert len(re.findall(r'<rect class="bar"', page)) > 20
    assert len(re.findall(r'<circle class="point"', page)) > 20
    assert page.count('class="threshold"') == 2
    assert page.count('class="event blamed"') >= 3

    shot = tmp_path / "report.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", report.as_uri(),
        ],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    width, height, rows = decode_png(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    pixels = [tuple(r[i : i + 3]) for r in rows[::4] for i in range(0, len(r), 12)]
    inked = sum(1 for p in pixels if min(p) < 230)
    # The bars' and blamed events' red, and the normal cases' blue, reach the screen.
    red = sum(1 for r, g, b in pixels if r > 180 and g < 110 and b < 110)
    blue = sum(1 for r, g, b in pixels if b > 170 and r < 150 and 120 < g < 190)
    assert inked > 0.03 * len(pixels), inked
    assert red > 50 and blue > 50, (red, blue)
