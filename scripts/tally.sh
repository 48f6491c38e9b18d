#!/usr/bin/env bash
# Runs the whole suite N times in a row at one commit, each run in a fresh clone, and keeps a tally.
#
#   scripts/tally.sh [COMMIT] [RUNS] [OUT]      # defaults: HEAD, 10, /tmp/tally
#
# Run 1 is the README's test command itself (./scripts/test.sh: fresh virtualenv, npm ci, Debian packages, then
# the suite); runs 2..N clone again and reuse run 1's installed .venv, node_modules and .venv-checkov, so each
# run starts from a clean work tree (no __pycache__, no built extension, no cdk.out) without reinstalling.
# Every run goes on after a failure (a tally, not a gate); OUT/tally.log has one line per run and OUT/runN.out
# the whole output. Not part of CI: ten runs take about two hours on 2 cores.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$repo" rev-parse "${1:-HEAD}")
runs=${2:-10}
out=${3:-/tmp/tally}
mkdir -p "$out"
log=$out/tally.log
echo "# $runs runs of $commit from $(date -u +%FT%TZ) on $(nproc) cores" >> "$log"
for i in $(seq 1 "$runs"); do
  dir=$out/run$i
  rm -rf "$dir"
  git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$commit"
  start=$(date +%s)
  if [ "$i" = 1 ]; then
    (cd "$dir" && ./scripts/test.sh -q -p no:cacheprovider) > "$out/run$i.out" 2>&1
  else
    for kept in .venv node_modules .venv-checkov; do ln -s "$out/run1/$kept" "$dir/$kept"; done
    # shellcheck source=scripts/env.sh
    (cd "$dir" && source scripts/env.sh && .venv/bin/python -m pytest -q -p no:cacheprovider) > "$out/run$i.out" 2>&1
  fi
  rc=$?
  echo "run $i exit $rc in $(($(date +%s) - start)) s, load $(cut -d' ' -f1-3 /proc/loadavg): $(tail -n 1 "$out/run$i.out")" >> "$log"
  [ "$i" = 1 ] || rm -rf "$dir"
done
echo "# done $(date -u +%FT%TZ)" >> "$log"
grep -c "exit 0 " "$log" | xargs echo "runs passed in this log:"
