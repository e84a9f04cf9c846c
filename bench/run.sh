#!/usr/bin/env bash
# Turnpike vs the direct upstream vs nginx / haproxy doing the same job, in one run on this box.
#
#   bench/run.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 10 s per target)
#
# Layout (2 cores): the proxy under test on CPU0 with one worker (nginx worker_processes 1,
# haproxy nbthread 1, Turnpike worker_threads = 1); the upstream (nginx returning a fixed 200),
# Redis and the load generator on CPU1. Rounds are interleaved so drift hits every target alike.
# Needs: wrk, nginx, haproxy, redis-server (Debian packages) and oha (`cargo install oha --locked`).
# Writes bench/results/latest.md (a Markdown table) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
OHA=${OHA:-$(command -v oha || echo /tmp/oha-root/bin/oha)}
W=$(mktemp -d /tmp/turnpike-bench.XXXXXX)
OUT=bench/results
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$W"; }
trap cleanup EXIT

for tool in wrk nginx haproxy redis-server; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk nginx haproxy redis-server" >&2; exit 1; }
done
[ -x "$OHA" ] || { echo "missing oha: cargo install oha --locked" >&2; exit 1; }

echo "building turnpike (release)…"
cargo build --release --quiet --bin turnpike --example bench_setup
TP=target/release/turnpike

UP=18100; NGX=18101; NGXK=18102; HAP=18103; TPL=18104; TPR=18105; RPORT=56390
for p in $UP $NGX $NGXK $HAP $TPL $TPR $RPORT 18106 18304 18305 18306; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "port $p is already in use (a previous run still alive?); stop it first" >&2; exit 1
  fi
done

# --- upstream: nginx returning a fixed 200, on CPU1 -------------------------------------------
cat > "$W/upstream.conf" <<EOF
worker_processes 1; daemon off; pid $W/upstream.pid; error_log $W/upstream.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
EOF
taskset -c 1 nginx -c "$W/upstream.conf" -p "$W" & PIDS+=($!)

# --- Redis for the Redis-counter variant, on CPU1 ----------------------------------------------
taskset -c 1 redis-server --port $RPORT --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null & PIDS+=($!)

# --- Turnpike: one API in front of the upstream, one key (plus 100k more for the RSS check) -----
KEY=$(target/release/examples/bench_setup "sqlite://$W/tp.db" "http://127.0.0.1:$UP" 1)
for i in $(seq 1 100); do echo "\"k$i-$RANDOM\" \"c$i\";"; done > "$W/other-keys"

start_tp() { # port redis? -> sets TP_PID
  local port=$1 redis=$2 env=()
  [ "$redis" = 1 ] && env=(TURNPIKE_REDIS_URL="redis://127.0.0.1:$RPORT/" TURNPIKE_REDIS_PREFIX="bench$port")
  env "${env[@]}" TURNPIKE_DATABASE_URL="sqlite://$W/tp.db" TURNPIKE_GATEWAY_ADDR="127.0.0.1:$port" \
    TURNPIKE_METRICS_ADDR="127.0.0.1:$((port + 200))" TURNPIKE_WORKER_THREADS=1 TURNPIKE_LOG_FORMAT=json \
    taskset -c 0 "$TP" gateway > "$W/tp$port.out" 2> "$W/tp$port.log" &
  TP_PID=$!
  PIDS+=("$TP_PID")
}

# --- nginx as a plain reverse proxy, and with key map + per-key limit_req + access log ----------
cat > "$W/proxy.conf" <<EOF
worker_processes 1; daemon off; pid $W/proxy.pid; error_log $W/proxy.err;
events { worker_connections 4096; }
http {
  map_hash_bucket_size 128;
  upstream up { server 127.0.0.1:$UP; keepalive 256; }
  map \$http_x_api_key \$client { default ""; "$KEY" "bench"; include $W/other-keys; }
  limit_req_zone \$client zone=perkey:10m rate=10000000r/s;
  log_format main '\$remote_addr \$client \$status \$request_time \$upstream_response_time';
  server { listen 127.0.0.1:$NGX; access_log off;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$NGXK; access_log $W/nginx-access.log main buffer=64k flush=1s;
    location / {
      if (\$client = "") { return 401; }
      limit_req zone=perkey burst=10000000 nodelay;
      proxy_set_header X-API-Key "";
      proxy_set_header X-Consumer \$client;
      proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
EOF
taskset -c 0 nginx -c "$W/proxy.conf" -p "$W" & PIDS+=($!); NGX_PID=$!

# --- haproxy with a key map + stick-table rate limit ---------------------------------------------
printf '%s bench\n' "$KEY" > "$W/keys.map"
cat > "$W/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$HAP
  stick-table type string len 80 size 100k expire 10s store http_req_rate(1s)
  http-request deny deny_status 401 unless { req.hdr(x-api-key),map($W/keys.map) -m found }
  http-request track-sc0 req.hdr(x-api-key)
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 10000000 }
  http-request del-header x-api-key
  default_backend be
backend be
  http-reuse always
  server up 127.0.0.1:$UP maxconn 1000
EOF
taskset -c 0 haproxy -f "$W/haproxy.cfg" -db > "$W/haproxy.log" 2>&1 & PIDS+=($!); HAP_PID=$!

start_tp $TPL 0; TPL_PID=$TP_PID
start_tp $TPR 1; TPR_PID=$TP_PID
sleep 2
for p in $UP $NGX $NGXK $HAP $TPL $TPR; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "http://127.0.0.1:$p/bench/x")
  [ "$code" = 200 ] || { echo "port $p answers $code" >&2; cat "$W"/tp*.log | tail -5 >&2; exit 1; }
done

# name port pid(for CPU accounting; empty = upstream itself)
TARGETS=(
  "direct $UP -"
  "nginx-proxy $NGX $NGX_PID"
  "nginx-keys $NGXK $NGX_PID"
  "haproxy-keys $HAP $HAP_PID"
  "turnpike-local $TPL $TPL_PID"
  "turnpike-redis $TPR $TPR_PID"
)

cpu_ticks() { # all processes in the pid's group of workers: nginx master + worker children
  local pid=$1 total=0
  for p in $pid $(pgrep -P "$pid" || true); do
    [ -r /proc/$p/stat ] && total=$((total + $(awk '{print $14 + $15}' /proc/$p/stat)))
  done
  echo $total
}

echo "round target rps cpu_s" > "$W/raw"
for r in $(seq 1 "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    read -r name port pid <<<"$t"
    before=0; [ "$pid" != - ] && before=$(cpu_ticks "$pid")
    rps=$(taskset -c 1 wrk -t1 -c50 -d"${SECS}s" --latency -H "X-API-Key: $KEY" "http://127.0.0.1:$port/bench/x" | awk '/Requests\/sec/ {print $2}')
    cpu=0; [ "$pid" != - ] && cpu=$(( $(cpu_ticks "$pid") - before ))
    echo "$r $name $rps $cpu" >> "$W/raw"
    echo "round $r $name: $rps req/s"
  done
done

echo "target p50_ms p99_ms" > "$W/lat"
for t in "${TARGETS[@]}"; do
  read -r name port pid <<<"$t"
  taskset -c 1 "$OHA" -z "${SECS}s" -c 50 -q 5000 --latency-correction --no-tui --output-format json \
    -H "X-API-Key: $KEY" "http://127.0.0.1:$port/bench/x" > "$W/oha-$name.json"
  python3 - "$W/oha-$name.json" "$name" >> "$W/lat" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
print(sys.argv[2], round(p["p50"] * 1000, 3), round(p["p99"] * 1000, 3))
PY
done

# RSS of the in-process Turnpike with 100k keys resolved into its cache.
KEYS_FILE="$W/keys.txt"
target/release/examples/bench_setup "sqlite://$W/rss.db" "http://127.0.0.1:$UP" 100000 "$KEYS_FILE" > /dev/null
RSSP=18106
env TURNPIKE_DATABASE_URL="sqlite://$W/rss.db" TURNPIKE_GATEWAY_ADDR="127.0.0.1:$RSSP" TURNPIKE_METRICS_ADDR="127.0.0.1:18306" \
  TURNPIKE_WORKER_THREADS=1 TURNPIKE_ACCESS_LOG=false "$TP" gateway > /dev/null 2>&1 & PIDS+=($!); RSS_PID=$!
sleep 1.5
python3 - "$KEYS_FILE" "$RSSP" <<'PY'
import sys, http.client
keys = open(sys.argv[1]).read().split()
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[2]))
bad = 0
for k in keys:
    c.request("GET", "/bench/x", headers={"X-API-Key": k})
    r = c.getresponse(); r.read()
    bad += r.status != 200
if bad: print(f"warning: {bad} keys not admitted", file=sys.stderr)
PY
RSS_KB=$(awk '/VmRSS/ {print $2}' /proc/$RSS_PID/status)

python3 - "$W/raw" "$W/lat" "$RSS_KB" "$ROUNDS" "$SECS" > "$OUT/latest.md" <<'PY'
import sys, statistics, collections, datetime
raw = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
lat = {l.split()[0]: l.split()[1:] for l in open(sys.argv[2]).read().splitlines()[1:]}
rss_kb, rounds, secs = int(sys.argv[3]), sys.argv[4], sys.argv[5]
by = collections.defaultdict(list); rnd = collections.defaultdict(dict); cpu = collections.defaultdict(float)
for r, name, rps, ticks in raw:
    by[name].append(float(rps)); rnd[r][name] = float(rps); cpu[name] += int(ticks) / 100.0
order = ["direct", "nginx-proxy", "nginx-keys", "haproxy-keys", "turnpike-local", "turnpike-redis"]
def ratio(name, base):
    return statistics.median(rnd[r][name] / rnd[r][base] for r in rnd)
print(f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {rounds} interleaved rounds of `wrk -t1 -c50 -d{secs}s` per target;")
print(f"latency from `oha -z {secs}s -c 50 -q 5000 --latency-correction` (open loop, below saturation).\n")
print("| target | RPS median (min–max) | ÷ direct | ÷ nginx-keys | ÷ haproxy-keys | RPS per proxy CPU-s | p50 ms | p99 ms | added p99 ms |")
print("|---|---|---|---|---|---|---|---|---|")
d99 = float(lat["direct"][1])
for n in order:
    v = by[n]; c = cpu[n]
    per_cpu = f"{sum(v) * float(secs) / c:,.0f}" if c > 0 else "–"
    p50, p99 = lat[n]
    print(f"| {n} | {statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f}) | {ratio(n, 'direct'):.2f} | {ratio(n, 'nginx-keys'):.2f} | {ratio(n, 'haproxy-keys'):.2f} | {per_cpu} | {p50} | {p99} | {float(p99) - d99:+.3f} |")
print(f"\nRSS of the in-process gateway after resolving 100,000 distinct keys: {rss_kb / 1024:.1f} MiB.")
PY
cat "$OUT/latest.md"
