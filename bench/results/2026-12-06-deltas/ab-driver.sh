#!/bin/bash
# ab-driver.sh ROUNDS COUNT : the same brookd, driver (brook) before/after, unpinned and on CPU 1
BD=${BD:-build/release/tools/brookd}
A=/tmp/before/build/release/tools/brook; B=${B:-build/release/tools/brook}
for r in $(seq $1); do
  for pin in all 1; do
    for x in A B; do drv=${!x}
      $BD --listen 127.0.0.1:19096 --shards 2 >/dev/null 2>/tmp/brookd-driver-ab.err & BP=$!; sleep 0.4
      pre=(); [ $pin = 1 ] && pre=(taskset -c 1)
      out=$( { /usr/bin/time -f "%U %S %c %w" "${pre[@]}" $drv bench throughput --url tcp://127.0.0.1:19096 --payload ${PAYLOAD:-64} --count $2 --window-bytes 0 ; } 2>&1 | awk '/msgs\/s/{r=$4} /^[0-9.]+ [0-9.]+ [0-9]+ [0-9]+$/{t=$0} END{print r, t}')
      bcpu=$(awk '{print $14+$15}' /proc/$BP/stat)
      kill $BP; wait $BP
      grep "^shard 0" /tmp/brookd-driver-ab.err | grep -q " publishes=0 " && o=P || o=S
      echo "cpus=$pin $x $o $out brokerticks=$bcpu"
    done
  done
done
