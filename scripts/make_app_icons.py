"""Draw the phone app's icons (server/static/app/icons/*.png): a red button on dark blue.

Pure Python (zlib), so no image library is needed; run it again after changing the design:

    python scripts/make_app_icons.py
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "server" / "static" / "app" / "icons"
BACKGROUND = (0x10, 0x23, 0x3F)
RING = (0xF2, 0xF4, 0xF7)
BUTTON = (0xD9, 0x2D, 0x2D)
HIGHLIGHT = (0xF0, 0x6A, 0x5F)
SAMPLES = 3  # per axis: 9 samples a pixel smooth the edges


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def colour_at(x: float, y: float, size: int, maskable: bool) -> tuple[int, int, int, int]:
    """The colour of point (x, y) of an icon ``size`` wide; alpha 0 outside the rounded square."""
    c = size / 2
    # A maskable icon is cropped to a circle of 80 % by the launcher: everything inside it, full bleed.
    corner = 0 if maskable else size * 0.22
    inset = 0 if maskable else size * 0.04
    lo, hi = inset, size - inset
    if not (lo <= x <= hi and lo <= y <= hi):
        return (0, 0, 0, 0)
    cx = min(max(x, lo + corner), hi - corner)
    cy = min(max(y, lo + corner), hi - corner)
    if corner and (x - cx) ** 2 + (y - cy) ** 2 > corner ** 2:
        return (0, 0, 0, 0)
    r = ((x - c) ** 2 + (y - c) ** 2) ** 0.5
    button_r = size * (0.27 if maskable else 0.32)
    if r <= button_r:
        # A soft highlight up and to the left makes it read as a button to press.
        hx, hy = c - button_r * 0.35, c - button_r * 0.35
        h = ((x - hx) ** 2 + (y - hy) ** 2) ** 0.5 / (button_r * 1.2)
        t = max(0.0, min(1.0, h))
        return (*[round(HIGHLIGHT[i] * (1 - t) + BUTTON[i] * t) for i in range(3)], 255)
    if r <= button_r * 1.14:
        return (*RING, 255)
    return (*BACKGROUND, 255)


def draw(size: int, maskable: bool = False) -> bytes:
    rows = []
    step = 1 / SAMPLES
    for py in range(size):
        row = bytearray()
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    r, g, b, a = colour_at(px + (sx + 0.5) * step, py + (sy + 0.5) * step, size, maskable)
                    acc[0] += r * a
                    acc[1] += g * a
                    acc[2] += b * a
                    acc[3] += a
            n = SAMPLES * SAMPLES
            alpha = acc[3] / n
            if acc[3]:
                row += bytes((round(acc[0] / acc[3]), round(acc[1] / acc[3]), round(acc[2] / acc[3]), round(alpha)))
            else:
                row += b"\x00\x00\x00\x00"
        rows.append(bytes(row))
    return png(size, size, rows)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, size, maskable in (("icon-192.png", 192, False), ("icon-512.png", 512, False),
                                 ("maskable-512.png", 512, True), ("apple-touch-icon.png", 180, True)):
        (OUT / name).write_bytes(draw(size, maskable))
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
