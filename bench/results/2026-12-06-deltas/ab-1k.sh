#!/bin/bash
# ab-1k.sh ROUNDS : brookd A/B at 1 KiB no window, 1,000,000 messages, unpinned and driver on CPU 1
A=$1; B=$2
for r in $(seq $3); do for pin in all 1; do for x in A B; do bd=${!x}
  $bd --listen 127.0.0.1:19098 --shards 2 >/dev/null 2>/tmp/brookd-ab-1k.err & BP=$!; sleep 0.4
  pre=(); [ $pin = 1 ] && pre=(taskset -c 1)
  rate=$("${pre[@]}" ${BROOK:-build/release/tools/brook} bench throughput --url tcp://127.0.0.1:19098 --payload ${PAYLOAD:-1024} --count 1000000 --window-bytes 0 2>&1 | awk '/msgs\/s/{print $4}')
  t=$(awk '{print $14+$15}' /proc/$BP/stat); kill $BP; wait $BP
  grep "^shard 0" /tmp/brookd-ab-1k.err | grep -q " publishes=0 " && o=P || o=S
  echo "cpus=$pin $x $o $rate $t"
done; done; done
