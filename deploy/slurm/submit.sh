#!/usr/bin/env bash
# Queues the shards (a job array) and the finishing run after all of them succeed.
#   deploy/slurm/submit.sh [--array=0-63%16]   (N = the array's size)
set -euo pipefail
here=$(dirname "$0")
shards=$(sbatch --parsable "$@" "$here/shards.sbatch")
finish=$(sbatch --parsable --dependency="afterok:${shards%%;*}" "$here/finish.sbatch")
echo "shards: job $shards; finishing run: job $finish (after every shard succeeds)"
