#!/bin/bash
# nowindow-by-owner.sh BROOKD [RUNS]: brook bench throughput with no window (64 B, COUNT
# messages, default 3,000,000) against a fresh 2-shard BROOKD, RUNS times; with PIN=1 the
# driver runs on CPU 1 (taskset -c 1). Per run: msgs/s, the broker's CPU per
# message (us, /proc/PID/stat), which shard owns the topic (S: the subscriber's shard, 0; P: the
# publisher's, 1; it follows from the bench's random topic name, one run in two of each), and
# each busy brookd thread's CPU in ticks of 1/100 s (the shards: shard 0 first).
# BUILD (default build/release) holds the brook that drives it.
B=${BUILD:-build/release}
BD=$1; runs=${2:-3}; count=${COUNT:-3000000}
pin=(); [ "${PIN:-0}" = 1 ] && pin=(taskset -c 1)
err=$(mktemp)
for r in $(seq "$runs"); do
  "$BD" --listen 127.0.0.1:19091 --shards 2 >/dev/null 2>"$err" & BP=$!; sleep 0.4
  t0=$(awk '{print $14+$15}' /proc/$BP/stat)
  declare -A th0; for t in /proc/$BP/task/*; do th0[$(basename $t)]=$(awk '{print $14+$15}' $t/stat); done
  out=$("${pin[@]}" $B/tools/brook bench throughput --url tcp://127.0.0.1:19091 --payload 64 --count "$count" --window-bytes 0 2>&1 | grep -E 'msgs/s' | head -1 | awk '{print $4}')
  t1=$(awk '{print $14+$15}' /proc/$BP/stat)
  ths=""; for t in /proc/$BP/task/*; do n=$(basename $t); d=$(( $(awk '{print $14+$15}' $t/stat) - ${th0[$n]:-0} )); [ $d -gt 2 ] && ths+="$(cat $t/comm):$d "; done
  kill $BP; wait $BP 2>/dev/null
  # The owner counts the publishes (deltas, since 51e878c, are made on the subscriber's shard).
  owner=$(grep "^shard 0" "$err" | grep -q " publishes=0 " && echo P || echo S)
  echo "$out cpu $(echo "scale=3; ($t1-$t0)*10000/$count" | bc) owner=$owner | $ths"
done
rm -f "$err"
