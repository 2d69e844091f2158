#!/bin/bash
# usage: ab-driver.sh RUNS PAYLOAD PIN(0/1) [COUNT]: against a brookd already listening on 127.0.0.1:9190,
# alternates the drivers /tmp/fan/brook.before and /tmp/fan/brook.after (copies of the two builds' tools/brook)
RUNS=$1; P=$2; PIN=$3; COUNT=${4:-2000000}
pre=(); [[ "$PIN" == 1 ]] && pre=(taskset -c 1)
for r in $(seq $RUNS); do for v in before after; do
  /usr/bin/time -f "%U %S %c" -o /tmp/fan/t.txt "${pre[@]}" /tmp/fan/brook.$v bench throughput --url tcp://127.0.0.1:9190 --payload $P --count $COUNT --window-bytes 0 --json > /tmp/fan/o.json
  python3 -c 'import json,sys; d=json.load(open("/tmp/fan/o.json")); t=open("/tmp/fan/t.txt").read().split(); print(sys.argv[1], round(d["msgs_per_sec"]), d["delivered_fraction"], "driver us/msg %.3f" % ((float(t[0])+float(t[1]))*1e6/d["received"]), "user %.3f" % (float(t[0])*1e6/d["received"]))' $v
done; done
