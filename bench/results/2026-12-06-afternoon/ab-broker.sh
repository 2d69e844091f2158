#!/bin/bash
# bab.sh RUNS PAYLOAD PIN COUNT: brookd before vs after, same driver; msgs/s, broker us/msg, faults
RUNS=$1; P=$2; PIN=$3; COUNT=${4:-6000000}
A=/tmp/before/build/release/tools/brookd; B=/work/main/build/release/tools/brookd
D=/work/main/build/release/tools/brook
pre=(); [[ "$PIN" == 1 ]] && pre=(taskset -c 1)
for r in $(seq $RUNS); do
  for bd in $A $B; do
    $bd --listen 127.0.0.1:9190 --shards 2 --no-pin >/tmp/fan/bd.out 2>&1 & BP=$!
    sleep 0.4
    c0=$(awk '{print $14+$15}' /proc/$BP/stat); f0=$(awk '{print $10}' /proc/$BP/stat)
    "${pre[@]}" $D bench throughput --url tcp://127.0.0.1:9190 --payload $P --count $COUNT --window-bytes 0 --json > /tmp/fan/o.json
    c1=$(awk '{print $14+$15}' /proc/$BP/stat); f1=$(awk '{print $10}' /proc/$BP/stat)
    kill $BP; wait $BP 2>/dev/null
    python3 -c 'import json,sys; d=json.load(open("/tmp/fan/o.json")); print(sys.argv[1], round(d["msgs_per_sec"]), d["delivered_fraction"], "broker us/msg %.3f" % ((int(sys.argv[3])-int(sys.argv[2]))*1e4/d["received"]), "faults", int(sys.argv[5])-int(sys.argv[4]))' $([[ $bd == $A ]] && echo before || echo after) $c0 $c1 $f0 $f1
  done
done
