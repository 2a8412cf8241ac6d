#!/usr/bin/env bash
# Sharded runs against a real S3 server (moto, from PyPI, in a venv):
#  (a) 3 shards of the default pipeline limited to 40 clips, at once, each
#      with its own data folder (as on its own machine), then the finishing
#      `pipe run` on a fourth: every result table equals a local run's;
#  (b) a shard killed with SIGKILL mid-run, then rerun: every object whole
#      and named by its bytes, what it had committed found, nothing put twice;
#  (c) with --ray: the same 3 shards as Ray tasks (deploy/ray/launch.py) on a
#      local Ray cluster (`ray start --head`), then its finishing run;
#  (d) the store going away mid-run (the server killed): requests retried for
#      store_retry_seconds, then the nodes fail with the reason, the shard
#      exits non-zero listing them, and no temporary file is left behind.
# Usage: .ci/s3_shards.sh [--ray] [PIPE_BINARY]   (default: builds target/release/pipe)
# Prints each step's wall time; exits non-zero on the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

ray=0
if [ "${1:-}" = --ray ]; then ray=1; shift; fi
pipe_bin=${1:-}
if [ -z "$pipe_bin" ]; then
  cargo build --release --locked
  pipe_bin=${CARGO_TARGET_DIR:-$repo/target}/release/pipe
fi

work=$(mktemp -d)
venv=${PIPE_S3_VENV:-$repo/target/s3-venv}
if [ ! -x "$venv/bin/moto_server" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'moto[server]==5.*' boto3 blake3
fi
py=$venv/bin/python

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true; rm -rf "$work"' EXIT
export AWS_ENDPOINT=http://127.0.0.1:$port AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export PIPE_PROGRESS_SECS=60
for _ in $(seq 100); do
  "$py" -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT')" 2>/dev/null && break
  sleep 0.2
done
s3() { "$py" "$repo/.ci/s3_objects.py" "$@"; }
s3 make-bucket study

# The shipped pipeline written out as one file (`pipe config --expand`: the
# study's includes and templates expanded, paths absolute), 40 clips; with a
# store if given. Each process gets a data folder of its own (PIPE_DATA_DIR),
# as on its own machine.
"$pipe_bin" -c pipeline.toml config --expand >"$work/expanded.toml"
config() { # NAME [STORE]
  local store=""
  [ -n "${2:-}" ] && store="store = \"$2\""
  sed -e "s|^data_dir = .*|&\n$store|" \
      -e 's|^\[dataset\]$|&\nlimit = 40|' \
      "$work/expanded.toml" >"$work/$1.toml"
  grep -q '^limit = 40' "$work/$1.toml"
}
run_at() { # DATA_FOLDER CONFIG ARGS...   (exec: a background run_at's $! is pipe itself)
  local data=$1 cfg=$2
  shift 2
  PIPE_DATA_DIR="$work/$data" exec "$pipe_bin" -c "$work/$cfg.toml" "$@"
}
config local
config a s3://study/a
config b s3://study/b
config c s3://study/c
config d s3://study/d
sed -i 's|^data_dir = .*|&\nstore_retry_seconds = 3|' "$work/d.toml"

# Every result table of run $1 equals the local run's byte for byte; summary
# without train_seconds (a wall time).
same_tables() {
  local n=0 f t run
  for f in "$work"/local/out/results/*.parquet; do
    t=$(basename "$f" .parquet)
    if [ "$t" = summary ]; then
      for run in local "$1"; do
        (run_at "$run" local query "SELECT * EXCLUDE (train_seconds) FROM summary" \
          --output "$work/$run-summary.parquet" >/dev/null)
      done
      cmp "$work/local-summary.parquet" "$work/$1-summary.parquet"
    else
      cmp "$f" "$work/$1/out/results/$t.parquet"
    fi
    n=$((n + 1))
  done
  [ "$n" -ge 6 ] || { echo "only $n result tables"; exit 1; }
  echo "   all $n result tables equal the local run's"
}
step() { echo "== $1 ($(date +%T))"; }
timed() { local t0=$SECONDS; "$@"; echo "   took $((SECONDS - t0)) s"; }
timed_to() { # OUT CMD...: CMD in a subshell, its output to $work/OUT
  local out=$1 t0=$SECONDS
  shift
  ("$@") >"$work/$out" 2>&1 || return 1
  echo "   took $((SECONDS - t0)) s"
}

step "local reference run (no store)"
timed_to local.out run_at local local run || { cat "$work/local.out"; exit 1; }

step "(a) 3 shards at once against s3://study/a"
t0=$SECONDS
pids=()
for i in 0 1 2; do
  run_at "shard$i" a run --shard "$i/3" --until features >"$work/shard$i.out" 2>&1 &
  pids+=($!)
done
for i in 0 1 2; do
  wait "${pids[$i]}" || { echo "shard $i failed:"; cat "$work/shard$i.out"; exit 1; }
  grep -E "^ *(render|decode|resample|features): |^store: " "$work/shard$i.out" | sed "s/^/   shard $i: /"
done
echo "   3 shards took $((SECONDS - t0)) s"
s3 count study a/store

step "(a) the finishing run on a fourth machine"
timed_to final.out run_at final a run || { cat "$work/final.out"; exit 1; }
grep -E "^ *(render|decode|resample|features|train): |^store: " "$work/final.out" | sed 's/^/   /'
for stage in render decode resample features; do
  if grep -qE "^ *$stage: [0-9]+ computed" "$work/final.out"; then
    echo "the finishing run recomputed $stage"; exit 1
  fi
done
same_tables final
s3 verify study a/store
s3 sizes study a/store
if s3 exists study a/shards.json; then echo "the finishing run left shards.json"; exit 1; fi

step "(b) shard 0/3 killed with SIGKILL mid-run, against s3://study/b"
run_at killed b run --shard 0/3 --until features >"$work/killed.out" 2>&1 &
victim=$!
# Kill once it has committed some features (its encoders are at work then).
for _ in $(seq 600); do
  n=$(s3 count-quiet study b/store/features)
  [ "$n" -ge 4 ] && break
  kill -0 $victim 2>/dev/null || { echo "the shard ended before it could be killed"; cat "$work/killed.out"; exit 1; }
  sleep 0.2
done
kill -9 $victim
wait $victim 2>/dev/null || true
echo "   killed after $(s3 count-quiet study b/store) objects"
s3 verify study b/store
before=$(s3 count-quiet study b/store)
timed_to rerun.out run_at rerun b run --shard 0/3 --until features || { cat "$work/rerun.out"; exit 1; }
grep -E "^ *(render|decode|resample|features): |^store: " "$work/rerun.out" | sed 's/^/   /'
fresh=$(grep -E "^ *(render|decode|resample|features): " "$work/rerun.out" | sed -E 's/.* ([0-9]+) fresh.*/\1/' | awk '{s += $1} END {print s}')
if [ "$fresh" != "$before" ]; then echo "rerun found $fresh fresh, but $before were committed"; exit 1; fi
if grep -q "already there" "$work/rerun.out"; then echo "the rerun put an object twice"; exit 1; fi
s3 verify study b/store
echo "   rerun found all $before committed artifacts fresh and put nothing twice"

if [ "$ray" = 1 ]; then
  step "(c) 3 shards as Ray tasks on a local Ray cluster, against s3://study/c"
  rayvenv=${PIPE_RAY_VENV:-$repo/target/ray-venv}
  if [ ! -x "$rayvenv/bin/ray" ]; then
    python3 -m venv "$rayvenv"
    timed "$rayvenv/bin/pip" install -q ray
  fi
  "$rayvenv/bin/ray" start --head --num-cpus 3 --include-dashboard=false --disable-usage-stats >"$work/ray.log" 2>&1
  trap '"$rayvenv/bin/ray" stop >/dev/null 2>&1 || true; kill $moto 2>/dev/null || true; rm -rf "$work"' EXIT
  PIPE_DATA_DIR="$work/ray" timed "$rayvenv/bin/python" deploy/ray/launch.py --shards 3 \
    --config "$work/c.toml" --pipe "$pipe_bin" --cache "$work/ray-cache" --finish >"$work/ray.out" 2>&1 || { cat "$work/ray.out"; exit 1; }
  grep -E "^shard|^  store:|shards done" "$work/ray.out" | sed 's/^/   /'
  same_tables ray
  s3 verify study c/store
fi

step "(d) the store killed mid-run, against s3://study/d (store_retry_seconds = 3)"
run_at lost d run --shard 1/3 --until features >"$work/lost.out" 2>&1 &
victim=$!
for _ in $(seq 600); do
  [ "$(s3 count-quiet study d/store)" -ge 4 ] && break
  sleep 0.2
done
kill -9 $moto
wait $moto 2>/dev/null || true
t0=$SECONDS
if wait $victim; then echo "the shard succeeded without its store"; cat "$work/lost.out"; exit 1; fi
echo "   the shard exited non-zero $((SECONDS - t0)) s after the store went away"
grep -q "node(s) failed" "$work/lost.out" || { cat "$work/lost.out"; exit 1; }
grep -m1 -E "^  [a-z]+ .*(committing|fetching)" "$work/lost.out" | cut -c1-600 | sed 's/^/   first listed: /'
left=$(find "$work/lost" -name '.tmp-*' | wc -l)
[ "$left" = 0 ] || { echo "$left temporary files left behind"; exit 1; }
echo "s3 shards: all checks passed"
