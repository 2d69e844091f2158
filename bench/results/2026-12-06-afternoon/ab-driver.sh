#!/bin/bash
# usage: ab.sh RUNS PAYLOAD PIN(0/1) COUNT: same brookd, the driver before vs after, alternated
RUNS=$1; P=$2; PIN=$3; COUNT=${4:-3000000}
A=/tmp/before/build/release/tools/brook; B=/work/main/build/release/tools/brook
pre=(); [[ "$PIN" == 1 ]] && pre=(taskset -c 1)
/work/main/build/release/tools/brookd --listen 127.0.0.1:9190 --shards 2 --no-pin >/tmp/fan/bd.out 2>&1 & BP=$!
sleep 0.5
for r in $(seq $RUNS); do
  for d in $A $B; do
    /usr/bin/time -f "%U %S %c" -o /tmp/fan/t.txt "${pre[@]}" $d bench throughput --url tcp://127.0.0.1:9190 --payload $P --count $COUNT --window-bytes 0 --json > /tmp/fan/o.json
    python3 -c 'import json,sys; d=json.load(open("/tmp/fan/o.json")); t=open("/tmp/fan/t.txt").read().split(); print(sys.argv[1], round(d["msgs_per_sec"]), d["delivered_fraction"], "driver cpu us/msg %.3f" % ((float(t[0])+float(t[1]))*1e6/d["received"]), "invol", t[2])' $([[ $d == $A ]] && echo before || echo after)
  done
done
kill $BP; wait
