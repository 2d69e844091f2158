#!/usr/bin/env bash
# bench/compare --quick --only brook against the binaries of this build: every scenario runs
# (the durable group's acked too, under each storage.sync, and the tls and web groups), Brook
# loses nothing, and the results file, the table and the plots are written.
set -euo pipefail
source_dir="$1" out="$2"
rm -rf "$out"
"$source_dir/bench/compare" --quick --only brook --no-build --no-install --out "$out"
test -s "$out/results.json" || { echo "no results.json" >&2; exit 1; }
grep -q '^#### throughput · tcp · 64 B' "$out/results.md" || { echo "results.md has no throughput table" >&2; exit 1; }
for scenario in rtt fanout topics oneway resync deltas requests acked; do
  grep -q "^#### $scenario" "$out/results.md" || { echo "results.md has no $scenario table" >&2; exit 1; }
done
if command -v gnuplot >/dev/null; then
  test -s "$out/plots/throughput.png" || { echo "no throughput.png" >&2; exit 1; }
  ls "$out"/plots/latency-*.png >/dev/null || { echo "no latency curves" >&2; exit 1; }
fi
for sync in always interval never; do
  grep -q "^| brook (sync $sync) |" "$out/results.md" || { echo "results.md has no row for sync $sync" >&2; exit 1; }
done
test ! -e "$out/durable-store" || { echo "the durable group left its stores behind" >&2; exit 1; }
grep -q '^#### throughput · tls · 64 B' "$out/results.md" || { echo "results.md has no TLS throughput table" >&2; exit 1; }
grep -q '^#### fanout · ws · 64 B' "$out/results.md" || { echo "results.md has no WebSocket fan-out table" >&2; exit 1; }
echo "bench/compare smoke: ok ($(grep -c . "$out/results.jsonl") results)"
