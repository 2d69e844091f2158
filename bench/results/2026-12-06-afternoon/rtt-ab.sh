#!/bin/bash
# rtt-ab.sh RUNS PAYLOAD: brookd+brook before vs after (each its own build), rtt at 10,000/s
RUNS=$1; P=$2
for r in $(seq $RUNS); do
  for side in before after; do
    if [[ $side == before ]]; then R=/tmp/before/build/release/tools; else R=/work/main/build/release/tools; fi
    $R/brookd --listen 127.0.0.1:9190 --shards 2 --no-pin >/tmp/fan/bd.out 2>&1 & BP=$!
    sleep 0.4
    $R/brook bench rtt --url tcp://127.0.0.1:9190 --payload $P --rate 10000 --count 150000 --json > /tmp/fan/r.json
    kill $BP; wait $BP 2>/dev/null
    python3 -c 'import json,sys; d=json.load(open("/tmp/fan/r.json")); print(sys.argv[1], "p50 %.1f p99 %.0f p999 %.0f max %.0f" % (d["p50_us"], d["p99_us"], d["p999_us"], d["max_us"]))' $side
  done
done
