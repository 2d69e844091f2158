#!/bin/bash
# ab-owner.sh ROUNDS : before/after by owner, unpinned (tp3, 3M) and driver on CPU 1 (tp4, 2M)
A=/tmp/before/build/release/tools/brookd; B=${B_BROOKD:-build/release/tools/brookd}
for r in $(seq $1); do
  for x in A B; do bd=${!x}
    echo "unpinned $x $("$(dirname "$0")"/tp3.sh $bd 1)"
    echo "cpu1     $x $(COUNT=2000000 "$(dirname "$0")"/tp4.sh $bd 1)"
  done
done
