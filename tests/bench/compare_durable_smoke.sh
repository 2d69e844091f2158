#!/usr/bin/env bash
# bench/compare --quick --only brook,nats --groups durable against the binaries of this build:
# Brook under each storage.sync beside nats-server with JetStream, one table per payload with a
# verdict on the target, the history replay from memory and from the journal, a restart after kill -9, and no store
# left behind. Skipped (77) without nats-server or a
# peer_bench built with cnats.
set -euo pipefail
source_dir="$1" out="$2"
command -v nats-server >/dev/null || { echo "nats-server is not installed: skipped"; exit 77; }
[[ -x "$PEER_BENCH" ]] || { echo "no $PEER_BENCH (libnats, libhiredis and libmosquitto all missing?): skipped"; exit 77; }
[[ "$("$PEER_BENCH" --help 2>&1)" == *nats* ]] || { echo "peer_bench was built without libnats: skipped"; exit 77; }
rm -rf "$out"
"$source_dir/bench/compare" --quick --only brook,nats --groups durable --no-build --no-install --out "$out"
for payload in 64 1024; do
  grep -q "^#### acked · tcp · $payload B" "$out/results.md" || { echo "results.md has no $payload B acked table" >&2; exit 1; }
done
grep -q '^| nats (JetStream' "$out/results.md" || { echo "results.md has no JetStream row" >&2; exit 1; }
test "$(grep -c '^Target: with sync always' "$out/results.md")" -eq 2 || { echo "results.md lacks the durable target's verdicts" >&2; exit 1; }
grep -q '"durable":' "$out/meta.json" || { echo "meta.json does not say how the stores were set up" >&2; exit 1; }
grep -q '^### History replay' "$out/results.md" || { echo "results.md has no history replay table" >&2; exit 1; }
grep -qE '^journal +[0-9]+ +[0-9]+ +[0-9]+ +0 +0$' "$out/results.md" || { echo "the journal replay lost or reordered an update" >&2; exit 1; }
grep -qE '^depth = 8 .* 1000 topic\(s\)' "$out/results.md" || { echo "results.md has no restart with every topic restored" >&2; exit 1; }
test ! -e "$out/durable-store" || { echo "the durable group left its stores behind" >&2; exit 1; }
if grep -q '^#### throughput' "$out/results.md"; then echo "--groups durable ran the live group too" >&2; exit 1; fi
echo "bench/compare durable smoke: ok ($(grep -c . "$out/results.jsonl") results)"
