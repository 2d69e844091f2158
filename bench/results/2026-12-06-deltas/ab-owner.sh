#!/bin/bash
# ab-owner.sh ROUNDS : brookd before (A) and after (B), in turn, by owner case: unpinned with
# 3,000,000 messages, then the driver on CPU 1 with 2,000,000
# (../2026-12-06-cross-shard/nowindow-by-owner.sh, one run each).
A=${A_BROOKD:-/tmp/before/build/release/tools/brookd}; B=${B_BROOKD:-build/release/tools/brookd}
by_owner="$(dirname "$0")/../2026-12-06-cross-shard/nowindow-by-owner.sh"
for r in $(seq "$1"); do
  for x in A B; do bd=${!x}
    echo "unpinned $x $("$by_owner" "$bd" 1)"
    echo "cpu1     $x $(PIN=1 COUNT=2000000 "$by_owner" "$bd" 1)"
  done
done
