#!/usr/bin/env python3
"""Regenerate the decoder test fixtures in tests/fixtures/audio/.

Every fixture is 0.25 s of a 440 Hz sine at 16 kHz (4000 frames). Mono files
carry 0.5*sin; stereo files carry 0.5*sin on the left and 0.25*sin on the right,
so the mono downmix is 0.375*sin. The WAVs are written here, sample by sample,
so their values are known exactly (int formats: round(x * 2^(bits-1)), clipped;
8-bit is unsigned with offset 128). FLAC, MP3 and OGG/Vorbis are encoded from
the 16-bit WAVs with sox (apt-get install sox libsox-fmt-all); the tests only
read the committed files, so CI needs no sox.

Usage: python3 tools/make_audio_fixtures.py  (from the repository root)
"""

import math
import os
import struct
import subprocess

RATE = 16000
FRAMES = 4000
FREQ = 440.0
OUT = "tests/fixtures/audio"


def sine(amp):
    return [amp * math.sin(2 * math.pi * FREQ * n / RATE) for n in range(FRAMES)]


def quantize(x, bits):
    scale = 1 << (bits - 1)
    return max(-scale, min(scale - 1, round(x * scale)))


def wav(path, channels, bits, fmt_tag, data):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, RATE, RATE * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def frames(channels):
    left = sine(0.5)
    if channels == 1:
        return [(x,) for x in left]
    return list(zip(left, sine(0.25)))


def int_wav(name, channels, bits):
    out = bytearray()
    for frame in frames(channels):
        for x in frame:
            q = quantize(x, bits)
            if bits == 8:
                out += struct.pack("<B", q + 128)
            elif bits == 24:
                out += struct.pack("<i", q)[:3]
            else:
                out += struct.pack("<h" if bits == 16 else "<i", q)
    wav(os.path.join(OUT, name), channels, bits, 1, bytes(out))


def float_wav(name, channels):
    out = b"".join(struct.pack("<f", x) for frame in frames(channels) for x in frame)
    wav(os.path.join(OUT, name), channels, 32, 3, out)


def sox(src, dst, *opts):
    subprocess.run(["sox", os.path.join(OUT, src), *opts, os.path.join(OUT, dst)], check=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    int_wav("sine_u8_mono.wav", 1, 8)
    int_wav("sine_s16_mono.wav", 1, 16)
    int_wav("sine_s16_stereo.wav", 2, 16)
    int_wav("sine_s24_stereo.wav", 2, 24)
    int_wav("sine_s32_mono.wav", 1, 32)
    float_wav("sine_f32_stereo.wav", 2)
    sox("sine_s16_mono.wav", "sine_mono.flac")
    sox("sine_s16_stereo.wav", "sine_stereo.flac")
    sox("sine_s16_mono.wav", "sine_mono.mp3", "-C", "128")
    sox("sine_s16_stereo.wav", "sine_stereo.ogg", "-C", "5")
    total = 0
    for name in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, name))
        total += size
        print(f"{size:8d}  {name}")
    print(f"{total:8d}  total")


if __name__ == "__main__":
    main()
