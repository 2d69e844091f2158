#!/bin/bash
# usage: tp3.sh BROOKD runs : msgs/s, broker cpu/msg, owner shard, per-thread ticks
B=${B:-build/release}
BD=$1; runs=${2:-3}; shift 2
for r in $(seq $runs); do
  $BD --listen 127.0.0.1:19091 --shards 2 "$@" >/dev/null 2>/tmp/brookd-by-owner.err & BP=$!; sleep 0.4
  t0=$(awk '{print $14+$15}' /proc/$BP/stat)
  declare -A th0; for t in /proc/$BP/task/*; do th0[$(basename $t)]=$(awk '{print $14+$15}' $t/stat); done
  out=$($B/tools/brook bench throughput --url tcp://127.0.0.1:19091 --payload 64 --count 3000000 --window-bytes 0 2>&1 | grep -E 'msgs/s' | head -1 | awk '{print $4}')
  t1=$(awk '{print $14+$15}' /proc/$BP/stat)
  ths=""; for t in /proc/$BP/task/*; do n=$(basename $t); d=$(( $(awk '{print $14+$15}' $t/stat) - ${th0[$n]:-0} )); [ $d -gt 2 ] && ths+="$(cat $t/comm):$d "; done
  kill $BP; wait $BP 2>/dev/null
  owner=$(grep "^shard 0" /tmp/brookd-by-owner.err | grep -q " publishes=0 " && echo P || echo S)
  echo "$out cpu $(echo "scale=3; ($t1-$t0)*10000/3000000" | bc) owner=$owner | $ths"
done
