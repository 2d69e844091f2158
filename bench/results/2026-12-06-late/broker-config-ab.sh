#!/bin/bash
# tpcfg.sh RUNS PAYLOAD PIN CFG... : alternates broker config files (binaries /tmp/pf); "none" = defaults
runs=$1; payload=$2; pin=$3; shift 3
pre=(); (( pin )) && pre=(taskset -c 1)
for r in $(seq $runs); do
 for v in "$@"; do
  pkill -x brookd; sleep 0.3
  cfg=(); [[ $v != none ]] && cfg=(--config /tmp/$v.toml)
  /tmp/pf/brookd --listen 127.0.0.1:9190 --shards 2 --no-pin "${cfg[@]}" > /tmp/brookd.cfg.log 2>&1 &
  BP=$!; sleep 0.7
  T0=$(awk '{print $14+$15}' /proc/$BP/stat)
  out=$("${pre[@]}" /tmp/pf/brook bench throughput --url tcp://127.0.0.1:9190 --payload $payload --count 3000000 --max-seconds 60 --window-bytes 0 --json 2>/dev/null | tail -1)
  T1=$(awk '{print $14+$15}' /proc/$BP/stat)
  echo "$out" | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('$v', round(d['msgs_per_sec']/1e6,3), d['delivered_fraction'], 'broker_us_per_msg', round(($T1-$T0)*10000/d['received'],3))"
  kill $BP; wait $BP 2>/dev/null
 done
done
