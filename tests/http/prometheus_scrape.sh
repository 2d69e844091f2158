#!/usr/bin/env bash
# A real Prometheus (Debian's) scrapes a running brookd's /metrics, and its query API returns
# Brook's series with the values the test caused; promtool accepts the exposition first.
#   tests/http/prometheus_scrape.sh BROOKD BROOK
# Exit 77 (skipped) when prometheus or promtool is not installed (tools/install-deps test
# installs them). Everything listens on 127.0.0.1 and stops with the script.
set -euo pipefail
brookd=$1 brook=$2
command -v prometheus >/dev/null && command -v promtool >/dev/null || {
  echo "prometheus_scrape: prometheus/promtool not installed (tools/install-deps test): skipped"
  exit 77
}
dir=$(mktemp -d /tmp/brook-prometheus.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "prometheus_scrape: FAIL: $*" >&2
  for log in "$dir"/*.log; do echo "--- $log" >&2; tail -20 "$log" >&2; done
  exit 1
}

# GET http://127.0.0.1:PORT/PATH with bash's /dev/tcp: the body on stdout.
http_get() {
  local port=$1 target=$2 answer
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$target" >&3
  answer=$(cat <&3) || true
  exec 3<&-
  [[ "$answer" == "HTTP/1.1 200"* ]] || return 1
  printf '%s\n' "${answer#*$'\r\n\r\n'}"
}

"$brookd" --listen 127.0.0.1:0 --http 127.0.0.1:0 --shards 2 --no-pin >"$dir/brookd.out" 2>"$dir/brookd.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on http://' "$dir/brookd.out" && break; sleep 0.1; done
tcp=$(sed -n 's|^listening on tcp://||p' "$dir/brookd.out")
http_port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$dir/brookd.out")
[ -n "$tcp" ] && [ -n "$http_port" ] || fail "brookd did not start"

for i in 1 2 3 4 5 6 7; do "$brook" pub --url "tcp://$tcp" "Scrape/odds/$i" "{\"price\":$i}" >/dev/null; done

http_get "$http_port" /metrics >"$dir/metrics.txt" || fail "GET /metrics"
promtool check metrics <"$dir/metrics.txt" >"$dir/promtool.log" 2>&1 || fail "promtool check metrics rejected the exposition"
echo "prometheus_scrape: promtool check metrics: accepted ($(grep -vc '^#' "$dir/metrics.txt") samples)"

cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: brookd
    static_configs:
      - targets: ['127.0.0.1:$http_port']
EOF
# Prometheus on a port found free: another test running beside this one may take it between
# the look and Prometheus's bind, so a Prometheus that exits before it is ready is started
# again on another port (bounded tries).
prom_port=""
for _ in $(seq 5); do
  candidate=""
  for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 30000))
    (exec 4<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null || break
    candidate=""
  done
  [ -n "$candidate" ] || fail "no free port for Prometheus"
  prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$candidate" >"$dir/prometheus.log" 2>&1 &
  prom_pid=$!
  for _ in $(seq 200); do
    kill -0 "$prom_pid" 2>/dev/null || break
    if ready=$(http_get "$candidate" /-/ready 2>/dev/null) && [[ "$ready" == *Ready* ]]; then
      prom_port=$candidate
      break
    fi
    sleep 0.1
  done
  if [ -n "$prom_port" ]; then pids+=("$prom_pid"); break; fi
  kill "$prom_pid" 2>/dev/null || true
  wait "$prom_pid" 2>/dev/null || true
done
[ -n "$prom_port" ] || fail "Prometheus did not start"

# The query API answers with the series once a scrape or two went by (bounded: 60 s).
query() { http_get "$prom_port" "/api/v1/query?query=$1"; }
publishes=""
for _ in $(seq 120); do
  if answer=$(query 'brook_publishes_total%7Bjob%3D%22brookd%22%7D' 2>/dev/null) && [[ "$answer" == *'"result":[{'* ]]; then
    publishes=$(sed -n 's/.*"value":\[[0-9.]*,"\([0-9.]*\)"\].*/\1/p' <<<"$answer")
    [ "$publishes" = 7 ] && break
  fi
  sleep 0.5
done
[ "$publishes" = 7 ] || fail "Prometheus did not return brook_publishes_total = 7 (last answer: ${answer:-none})"
echo "prometheus_scrape: brook_publishes_total{job=\"brookd\"} = $publishes"

answer=$(query 'up%7Bjob%3D%22brookd%22%7D') || fail "query up"
[[ "$answer" == *'"value":['*',"1"]'* ]] || fail "up{job=\"brookd\"} is not 1: $answer"
answer=$(query 'count(brook_shard_busy_seconds_total)') || fail "query shard series"
[[ "$answer" == *',"2"]'* ]] || fail "expected 2 shards' brook_shard_busy_seconds_total: $answer"
answer=$(query 'sum(brook_shard_topics)') || fail "query topics"
[[ "$answer" == *',"7"]'* ]] || fail "expected 7 topics in brook_shard_topics: $answer"
answer=$(query 'brook_publish_to_send_seconds_count') || fail "query histogram"
[[ "$answer" == *'"result":[{'* ]] || fail "no brook_publish_to_send_seconds_count series: $answer"
echo "prometheus_scrape: up = 1, 2 shard series, 7 topics, the latency histogram: OK"
