"""pipe's shards as Ray tasks: one task per shard, each running
`pipe run --shard I/N --until features` (with `num_gpus` when the encoders
are on a GPU), retried on its own when it fails; then, with --finish, the
one `pipe run` that finishes the study on this machine.

    pip install ray
    ray start --head                       # or: an existing cluster
    python deploy/ray/launch.py --shards 16 --gpus 1 --finish

Every node needs `pipe` (or --pipe PATH), the pipeline's inputs at the same
paths, and credentials for the store named in pipeline.toml (`store = ...`)
in its environment. Each task keeps its cache under --cache/shard-I
(PIPE_DATA_DIR). Exit status: 0 when every shard (and the finish) succeeded.
"""

import argparse
import os
import subprocess
import sys
import time

import ray


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, required=True, help="N: how many shards")
    ap.add_argument("--config", default="pipeline.toml", help="pipeline.toml (with store = ...)")
    ap.add_argument("--pipe", default="pipe", help="the pipe binary on every node")
    ap.add_argument("--gpus", type=float, default=0, help="GPUs per shard (0: CPU encoders)")
    ap.add_argument("--cpus", type=float, default=1, help="CPUs Ray reserves per shard")
    ap.add_argument("--retries", type=int, default=2, help="retries of a failed shard")
    ap.add_argument("--cache", default=None, help="per-task cache folder root (default: pipeline.toml's data_dir)")
    ap.add_argument("--until", default="features", help="last stage the shards run")
    ap.add_argument("--address", default="auto", help="Ray cluster address")
    ap.add_argument("--finish", action="store_true", help="run the finishing `pipe run` here after the shards")
    args = ap.parse_args()

    config = os.path.abspath(args.config)
    ray.init(address=args.address, log_to_driver=False)

    @ray.remote(num_gpus=args.gpus, num_cpus=args.cpus, max_retries=args.retries, retry_exceptions=True)
    def shard(i: int) -> tuple[int, float, str]:
        env = dict(os.environ)
        if args.cache:
            env["PIPE_DATA_DIR"] = os.path.join(args.cache, f"shard-{i}")
        cmd = [args.pipe, "-c", config, "run", "--shard", f"{i}/{args.shards}", "--until", args.until]
        t0 = time.time()
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        said = (p.stdout + p.stderr)[-6000:]
        if p.returncode != 0:
            # An exception makes Ray retry this shard alone (retry_exceptions).
            raise RuntimeError(f"shard {i}/{args.shards} exited {p.returncode}:\n{said}")
        return i, time.time() - t0, said

    t0 = time.time()
    pending = {shard.remote(i): i for i in range(args.shards)}
    failed = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done[0])
        try:
            _, secs, said = ray.get(done[0])
            summary = [l for l in said.splitlines() if l.lstrip().startswith(("decode:", "render:", "features:", "store:"))]
            print(f"shard {i}/{args.shards}: done in {secs:.1f} s", *(f"  {l.strip()}" for l in summary), sep="\n", flush=True)
        except ray.exceptions.RayTaskError as e:
            failed.append(i)
            print(f"shard {i}/{args.shards}: FAILED after {args.retries} retries\n{e}", file=sys.stderr, flush=True)
    print(f"{args.shards - len(failed)} of {args.shards} shards done in {time.time() - t0:.1f} s", flush=True)
    if failed:
        print(f"failed shards: {failed}; rerun them, e.g. {args.pipe} -c {config} run --shard {failed[0]}/{args.shards}", file=sys.stderr)
        return 1
    if args.finish:
        print("finishing run:", flush=True)
        return subprocess.run([args.pipe, "-c", config, "run"]).returncode
    print(f"now finish the study: {args.pipe} -c {config} run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
