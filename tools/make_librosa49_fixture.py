#!/usr/bin/env python3
"""Regenerate tests/fixtures/librosa49/reference.json: librosa 0.10's 49 audio
statistics (the study's A3 inputs) on synthetic 24 kHz signals, the reference
`src/features/librosa49.rs` is tested against.

The signals are defined here and, formula for formula, in the Rust test
(`signal()` in src/features/librosa49.rs): computed in float64, stored as
float32 (what `librosa.load` returns). Each entry also records the sum and the
sum of squares of the float32 samples, so the test first checks that both
sides built the same signal.

The 49 values are computed as the study's code did: one call per librosa
feature with its defaults at sr = 24000 (n_fft 2048, hop 512, center=True),
then np.mean / np.std (population) / np.max over frames:
  rms (mean, std, max), spectral_centroid, spectral_bandwidth,
  spectral_rolloff (0.85), zero_crossing_rate (mean, std each),
  mfcc (n_mfcc=13: 13 means, then 13 stds), chroma_stft (12 means, C..B).
`tuning` is librosa.estimate_tuning on the power spectrogram, exactly what
chroma_stft calls internally. `filters` holds row sums and peaks of
librosa's mel filterbank (128 Slaney bands, 24 kHz, n_fft 2048) and row sums
of its chroma filterbank at tuning 0 and 0.3, for the filterbank tests.

Usage (from the repository root), with librosa 0.10.2 installed:
    python3 tools/make_librosa49_fixture.py
"""

import json
import os

import librosa
import numpy as np

SR = 24000
OUT = "tests/fixtures/librosa49/reference.json"


def t(seconds):
    return np.arange(int(round(seconds * SR)), dtype=np.float64) / SR


def harmonic(f0, seconds, amps):
    x = t(seconds)
    return sum(a * np.sin(2 * np.pi * f0 * (k + 1) * x) for k, a in enumerate(amps))


def signals():
    out = {}
    # 2 s: 220 Hz with 4 harmonics (1/k), slow amplitude modulation.
    x = t(2.0)
    env = 0.25 * (1.0 + 0.5 * np.sin(2 * np.pi * 1.5 * x))
    out["tone"] = env * harmonic(220.0, 2.0, [1.0, 0.5, 1 / 3, 0.25, 0.2])
    # 1.5 s: linear chirp 100 Hz -> 6 kHz, amplitude 0.4.
    x = t(1.5)
    f0, f1, dur = 100.0, 6000.0, 1.5
    out["chirp"] = 0.4 * np.sin(2 * np.pi * (f0 * x + (f1 - f0) / (2 * dur) * x * x))
    # 0.6 s: 0.1 s of digital silence, 0.25 s decaying A4 + 2 harmonics, 0.25 s silence.
    a = harmonic(440.0, 0.25, [0.5, 0.2, 0.1]) * np.exp(-t(0.25) / 0.08)
    out["short_silence"] = np.concatenate([np.zeros(2400), a, np.zeros(6000)])
    # 1 s: C major triad (C4 E4 G4, 3 harmonics each) tuned 30 cents sharp.
    cents = 0.30
    freqs = [440.0 * 2 ** ((m - 69 + cents) / 12) for m in (60, 64, 67)]
    out["detuned_triad"] = sum(0.15 * harmonic(f, 1.0, [1.0, 0.4, 0.2]) for f in freqs)
    return {k: v.astype(np.float32) for k, v in out.items()}


def stats(y):
    kw = dict(y=y, sr=SR)
    rms = librosa.feature.rms(y=y)[0]
    cen = librosa.feature.spectral_centroid(**kw)[0]
    bw = librosa.feature.spectral_bandwidth(**kw)[0]
    ro = librosa.feature.spectral_rolloff(**kw)[0]
    zcr = librosa.feature.zero_crossing_rate(y)[0]
    mfcc = librosa.feature.mfcc(**kw, n_mfcc=13)
    chroma = librosa.feature.chroma_stft(**kw)
    v = [np.mean(rms), np.std(rms), np.max(rms)]
    for f in (cen, bw, ro, zcr):
        v += [np.mean(f), np.std(f)]
    v += list(np.mean(mfcc, axis=1)) + list(np.std(mfcc, axis=1))
    v += list(np.mean(chroma, axis=1))
    assert len(v) == 49
    S = np.abs(librosa.stft(y)) ** 2
    tuning = librosa.estimate_tuning(S=S, sr=SR, bins_per_octave=12)
    return [float(x) for x in v], float(tuning), int(rms.shape[0])


def main():
    entries = {}
    for name, y in signals().items():
        values, tuning, frames = stats(y)
        entries[name] = {
            "samples": int(len(y)),
            "sum": float(np.sum(y.astype(np.float64))),
            "sum_sq": float(np.sum(y.astype(np.float64) ** 2)),
            "frames": frames,
            "tuning": tuning,
            "values": values,
        }
    mel = librosa.filters.mel(sr=SR, n_fft=2048)
    filters = {
        "mel_row_sums": [float(x) for x in mel.astype(np.float64).sum(axis=1)],
        "mel_row_peaks": [float(x) for x in mel.max(axis=1)],
        "chroma_row_sums": {
            str(tun): [
                float(x)
                for x in librosa.filters.chroma(sr=SR, n_fft=2048, tuning=tun)
                .astype(np.float64)
                .sum(axis=1)
            ]
            for tun in (0.0, 0.3)
        },
    }
    doc = {
        "generator": "tools/make_librosa49_fixture.py",
        "librosa": librosa.__version__,
        "numpy": np.__version__,
        "sample_rate": SR,
        "signals": entries,
        "filters": filters,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
