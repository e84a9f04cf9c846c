#!/usr/bin/env bash
# Turnpike vs the direct upstream vs nginx / haproxy doing the same job, in one run on this box.
#
#   bench/run.sh [ROUNDS] [SECONDS]      (defaults: 3 rounds of 10 s per target)
#
# Also measured in the same rounds: the *floor* (gateway/examples/floor.rs, a bare hyper 1.x
# proxy with hyper-util's legacy pooled client and no policy: issue 14's reference for any
# hyper-based gateway); an HTTPS upstream (the upstream nginx also serves TLS with a throwaway CA
# made here with openssl: Turnpike with an `https://` target and `[[upstream]] ca_file` vs nginx
# `proxy_pass https://` with upstream keepalive and session reuse); and a TLS listener (h2load
# over TLS, `-t1 -c50 -m10`: Turnpike with `TURNPIKE_GATEWAY_TLS_CERT_FILE`/`_KEY_FILE` vs nginx
# `listen ssl http2`), skipped with a printed reason when the binary does not serve TLS.
#
# Layout (2 cores): the proxy under test on CPU0 with one worker (nginx worker_processes 1,
# haproxy nbthread 1, Turnpike worker_threads = 1); the upstream (nginx returning a fixed 200),
# Redis and the load generator on CPU1. Rounds are interleaved so drift hits every target alike.
# Needs: wrk, nginx, haproxy, redis-server, openssl, h2load (Debian packages: nghttp2-client) and
# oha (`cargo install oha --locked`).
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

for tool in wrk nginx haproxy redis-server openssl h2load; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk nginx haproxy redis-server openssl nghttp2-client" >&2; exit 1; }
done
# Without oha the latency columns are left empty (the throughput rounds still run).
[ -x "$OHA" ] || echo "missing oha (cargo install oha --locked --root /tmp/oha-root): latency columns skipped" >&2

echo "building turnpike (release)…"
cargo build --release --quiet --bin turnpike --example bench_setup
cargo build --release --quiet -p turnpike-gateway --example floor
TP=target/release/turnpike

UP=18100; NGX=18101; NGXK=18102; HAP=18103; TPL=18104; TPR=18105; RPORT=56390
FLOOR=18107; UPS=18110; NGXS=18111; TPS=18112; NGXT=18113; TPT=18114
for p in $UP $NGX $NGXK $HAP $TPL $TPR $RPORT 18106 18304 18305 18306 $FLOOR $UPS $NGXS $TPS $NGXT $TPT 18312 18314; do
  if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
    echo "port $p is already in use (a previous run still alive?); stop it first" >&2; exit 1
  fi
done

# --- a throwaway CA and a certificate for localhost / 127.0.0.1 (HTTPS upstream, TLS listener) ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=turnpike-bench-ca \
  -keyout "$W/ca.key" -out "$W/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$W/server.key" -out "$W/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$W/server.ext"
openssl x509 -req -in "$W/server.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial -days 2 \
  -extfile "$W/server.ext" -out "$W/server.pem" 2>/dev/null

# --- upstream: nginx returning a fixed 200 (plain and TLS), on CPU1 ------------------------------
cat > "$W/upstream.conf" <<EOF
worker_processes 1; daemon off; pid $W/upstream.pid; error_log $W/upstream.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } }
  server { listen 127.0.0.1:$UPS ssl; ssl_certificate $W/server.pem; ssl_certificate_key $W/server.key;
    ssl_session_cache shared:up:1m; location / { return 200 "ok\n"; } } }
EOF
taskset -c 1 nginx -c "$W/upstream.conf" -p "$W" & PIDS+=($!)

# --- Redis for the Redis-counter variant, on CPU1 ----------------------------------------------
taskset -c 1 redis-server --port $RPORT --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null & PIDS+=($!)

# --- Turnpike: one API in front of the upstream, one key (plus 100k more for the RSS check) -----
KEY=$(target/release/examples/bench_setup "sqlite://$W/tp.db" "http://127.0.0.1:$UP" 1)
# The HTTPS-upstream instance: its own database with an https:// target, trusting the bench CA.
KEYS_UP=$(target/release/examples/bench_setup "sqlite://$W/tps.db" "https://127.0.0.1:$UPS" 1)
printf '[[upstream]]\napi = "bench"\nca_file = "%s"\n' "$W/ca.pem" > "$W/tps.toml"
for i in $(seq 1 100); do echo "\"k$i-$RANDOM\" \"c$i\";"; done > "$W/other-keys"

start_tp() { # port mode(local|redis|https-up|tls) -> sets TP_PID
  local port=$1 mode=$2 env=() db="$W/tp.db" cfg="$W/none.toml"
  case "$mode" in
    redis) env=(TURNPIKE_REDIS_URL="redis://127.0.0.1:$RPORT/" TURNPIKE_REDIS_PREFIX="bench$port") ;;
    https-up) db="$W/tps.db"; cfg="$W/tps.toml" ;;
    tls) env=(TURNPIKE_GATEWAY_TLS_CERT_FILE="$W/server.pem" TURNPIKE_GATEWAY_TLS_KEY_FILE="$W/server.key") ;;
  esac
  env "${env[@]}" TURNPIKE_DATABASE_URL="sqlite://$db" TURNPIKE_GATEWAY_ADDR="127.0.0.1:$port" \
    TURNPIKE_METRICS_ADDR="127.0.0.1:$((port + 200))" TURNPIKE_WORKER_THREADS=1 TURNPIKE_LOG_FORMAT=json \
    taskset -c 0 "$TP" --config "$cfg" gateway > "$W/tp$port.out" 2> "$W/tp$port.log" &
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
  map \$http_x_api_key \$client { default ""; "$KEY" "bench"; "$KEYS_UP" "bench"; include $W/other-keys; }
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
  # The same policy in front of the TLS upstream: verified, kept alive, sessions reused.
  upstream ups { server 127.0.0.1:$UPS; keepalive 256; }
  server { listen 127.0.0.1:$NGXS; access_log $W/nginx-access-s.log main buffer=64k flush=1s;
    location / {
      if (\$client = "") { return 401; }
      limit_req zone=perkey burst=10000000 nodelay;
      proxy_set_header X-API-Key "";
      proxy_set_header X-Consumer \$client;
      proxy_ssl_trusted_certificate $W/ca.pem; proxy_ssl_verify on; proxy_ssl_name localhost;
      proxy_ssl_server_name on; proxy_ssl_session_reuse on;
      proxy_pass https://ups; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  # The same policy behind a TLS listener (HTTP/2 and HTTP/1.1 by ALPN).
  server { listen 127.0.0.1:$NGXT ssl http2; access_log $W/nginx-access-t.log main buffer=64k flush=1s;
    ssl_certificate $W/server.pem; ssl_certificate_key $W/server.key; keepalive_requests 1000000;
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

start_tp $TPL local; TPL_PID=$TP_PID
start_tp $TPR redis; TPR_PID=$TP_PID
start_tp $TPS https-up; TPS_PID=$TP_PID
start_tp $TPT tls; TPT_PID=$TP_PID
taskset -c 0 target/release/examples/floor "127.0.0.1:$FLOOR" "http://127.0.0.1:$UP" 1 & PIDS+=($!); FLOOR_PID=$!
sleep 2
for p in $UP $NGX $NGXK $HAP $TPL $TPR $FLOOR $NGXS; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEY" "http://127.0.0.1:$p/bench/x")
  [ "$code" = 200 ] || { echo "port $p answers $code" >&2; cat "$W"/tp*.log | tail -5 >&2; exit 1; }
done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $KEYS_UP" "http://127.0.0.1:$TPS/bench/x")
[ "$code" = 200 ] || { echo "turnpike with the https:// upstream answers $code" >&2; tail -5 "$W/tp$TPS.log" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$W/ca.pem" -H "X-API-Key: $KEY" "https://127.0.0.1:$NGXT/bench/x")
[ "$code" = 200 ] || { echo "nginx TLS listener answers $code" >&2; exit 1; }
# The TLS listener row needs a binary that serves TLS (tls_cert_file + tls_key_file).
TLS_ROW=1
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$W/ca.pem" -H "X-API-Key: $KEY" "https://127.0.0.1:$TPT/bench/x" || true)
if [ "$code" != 200 ]; then
  TLS_ROW=0
  echo "skipping the TLS-listener row: this turnpike does not serve TLS with TURNPIKE_GATEWAY_TLS_CERT_FILE/_KEY_FILE (https answered '$code')" >&2
fi

# name port pid(for CPU accounting; empty = upstream itself)
TARGETS=(
  "direct $UP - $KEY"
  "nginx-proxy $NGX $NGX_PID $KEY"
  "nginx-keys $NGXK $NGX_PID $KEY"
  "haproxy-keys $HAP $HAP_PID $KEY"
  "floor $FLOOR $FLOOR_PID $KEY"
  "turnpike-local $TPL $TPL_PID $KEY"
  "turnpike-redis $TPR $TPR_PID $KEY"
  "nginx-keys-https-up $NGXS $NGX_PID $KEY"
  "turnpike-https-up $TPS $TPS_PID $KEYS_UP"
)
# TLS listeners, loaded with h2load over TLS (ALPN h2).
TLS_TARGETS=("nginx-tls $NGXT $NGX_PID $KEY")
[ "$TLS_ROW" = 1 ] && TLS_TARGETS+=("turnpike-tls $TPT $TPT_PID $KEY")

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
    read -r name port pid key <<<"$t"
    before=0; [ "$pid" != - ] && before=$(cpu_ticks "$pid")
    rps=$(taskset -c 1 wrk -t1 -c50 -d"${SECS}s" --latency -H "X-API-Key: $key" "http://127.0.0.1:$port/bench/x" | awk '/Requests\/sec/ {print $2}')
    cpu=0; [ "$pid" != - ] && cpu=$(( $(cpu_ticks "$pid") - before ))
    echo "$r $name $rps $cpu" >> "$W/raw"
    echo "round $r $name: $rps req/s"
  done
  for t in "${TLS_TARGETS[@]}"; do
    read -r name port pid key <<<"$t"
    before=$(cpu_ticks "$pid")
    rps=$(taskset -c 1 h2load -t1 -c50 -m10 -D "$SECS" -H "x-api-key: $key" "https://127.0.0.1:$port/bench/x" \
      | awk '/^finished in/ {print $4}')
    cpu=$(( $(cpu_ticks "$pid") - before ))
    echo "$r $name $rps $cpu" >> "$W/raw"
    echo "round $r $name: $rps req/s (h2load, TLS)"
  done
done

echo "target p50_ms p99_ms" > "$W/lat"
for t in "${TARGETS[@]}"; do
  [ -x "$OHA" ] || break
  read -r name port pid key <<<"$t"
  taskset -c 1 "$OHA" -z "${SECS}s" -c 50 -q 5000 --latency-correction --no-tui --output-format json \
    -H "X-API-Key: $key" "http://127.0.0.1:$port/bench/x" > "$W/oha-$name.json"
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
order = ["direct", "nginx-proxy", "nginx-keys", "haproxy-keys", "floor", "turnpike-local", "turnpike-redis",
         "nginx-keys-https-up", "turnpike-https-up"]
def ratio(name, base):
    return statistics.median(rnd[r][name] / rnd[r][base] for r in rnd)
def per_cpu(n):
    return f"{sum(by[n]) * float(secs) / cpu[n]:,.0f}" if cpu[n] > 0 else "–"
def rps(n):
    v = by[n]
    return f"{statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f})"
print(f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {rounds} interleaved rounds of `wrk -t1 -c50 -d{secs}s` per target;")
print(f"latency from `oha -z {secs}s -c 50 -q 5000 --latency-correction` (open loop, below saturation)." if lat else "latency not measured (oha missing).")
print("`floor`: a bare hyper 1.x proxy, no policy (gateway/examples/floor.rs). The `-https-up` rows proxy to the")
print("upstream over TLS (nginx: `proxy_pass https://`, keepalive, session reuse; Turnpike: an `https://` target).\n")
print("| target | RPS median (min–max) | ÷ direct | ÷ nginx-keys | ÷ haproxy-keys | ÷ floor | RPS per proxy CPU-s | p50 ms | p99 ms | added p99 ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
d99 = float(lat["direct"][1]) if "direct" in lat else None
for n in order:
    p50, p99 = lat.get(n, ["–", "–"])
    added = f"{float(p99) - d99:+.3f}" if d99 is not None and n in lat else "–"
    print(f"| {n} | {rps(n)} | {ratio(n, 'direct'):.2f} | {ratio(n, 'nginx-keys'):.2f} | {ratio(n, 'haproxy-keys'):.2f} | {ratio(n, 'floor'):.2f} | {per_cpu(n)} | {p50} | {p99} | {added} |")
print(f"\nHTTPS upstream, same policy: turnpike-https-up ÷ nginx-keys-https-up = **{ratio('turnpike-https-up', 'nginx-keys-https-up'):.2f}** (goal ≥ 1.0).")
print(f"\nTLS listener (`h2load -t1 -c50 -m10 -D {secs}` over TLS, ALPN h2; same key policy, plain upstream):\n")
print("| target | RPS median (min–max) | ÷ nginx-tls | RPS per proxy CPU-s |")
print("|---|---|---|---|")
for n in ["nginx-tls", "turnpike-tls"]:
    if n in by:
        print(f"| {n} | {rps(n)} | {ratio(n, 'nginx-tls'):.2f} | {per_cpu(n)} |")
    else:
        print(f"| {n} | skipped: this binary does not serve TLS | – | – |")
print(f"\nRSS of the in-process gateway after resolving 100,000 distinct keys: {rss_kb / 1024:.1f} MiB.")
PY
cat "$OUT/latest.md"
