#!/usr/bin/env python3
"""PyTorch CPU reference for `pipe bench`: the same clip through transformers'
HuBERT model built from the MERT-v1 config with random weights (fp32, all
threads, inference mode, every hidden state returned, as `pipe` computes).

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch transformers numpy
    /tmp/torchenv/bin/python tools/torch_cpu_bench.py --model 95m --seconds 10 --repeat 5

Prints one JSON line per model: ms per clip (median after one warm-up pass),
each pass, the real-time factor, torch's thread count and versions. It is
not used by the pipeline or its tests; BENCHMARKS.md records its output next
to `pipe bench` runs taken in the same minutes.
"""

import argparse
import json
import statistics
import time

import torch
import transformers
from transformers import HubertConfig, HubertModel

# MERT-v1-95M / 330M as `pipe`'s presets (src/encoder/config.rs): 24 kHz input,
# 7 conv layers of 512 channels with group norm, conv positional embedding of
# 128 taps in 16 groups, post-LN (95M) or pre-LN (330M) transformer.
MODELS = {
    "95m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, do_stable_layer_norm=False),
    "330m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                 intermediate_size=4096, do_stable_layer_norm=True),
}
SAMPLE_RATE = 24_000


def build(name: str) -> HubertModel:
    cfg = HubertConfig(
        conv_dim=[512] * 7,
        conv_kernel=[10, 3, 3, 3, 3, 2, 2],
        conv_stride=[5, 2, 2, 2, 2, 2, 2],
        conv_bias=False,
        feat_extract_norm="group",
        feat_extract_activation="gelu",
        feat_proj_layer_norm=True,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        **MODELS[name],
    )
    torch.manual_seed(0)
    return HubertModel(cfg).eval()


def time_model(name: str, seconds: float, repeat: int) -> dict:
    model = build(name)
    wave = torch.randn(1, int(seconds * SAMPLE_RATE), dtype=torch.float32)
    runs = []
    with torch.inference_mode():
        for i in range(repeat + 1):
            t0 = time.perf_counter()
            out = model(wave, output_hidden_states=True)
            ms = (time.perf_counter() - t0) * 1e3
            if i > 0:  # the first pass warms caches and allocators
                runs.append(ms)
    median = statistics.median(runs)
    return {
        "model": name,
        "seconds": seconds,
        "frames": int(out.last_hidden_state.shape[1]),
        "hidden_states": len(out.hidden_states),
        "ms_per_clip": round(median, 1),
        "runs_ms": [round(r, 1) for r in runs],
        "rtf": round(seconds * 1e3 / median, 2),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=[*MODELS, "all"], default="95m")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="0: torch's default (all cores)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    for name in MODELS if a.model == "all" else [a.model]:
        print(json.dumps(time_model(name, a.seconds, a.repeat)), flush=True)


if __name__ == "__main__":
    main()
