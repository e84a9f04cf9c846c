#!/usr/bin/env bash
# Instructions per request: a stable number to watch for regressions (it does not depend on the
# machine's load). Runs the gateway (single-threaded runtime, access log on) under
# `valgrind --tool=callgrind` twice, for N1 and N2 requests over one keep-alive connection, and
# reports (I(N2) - I(N1)) / (N2 - N1), which cancels start-up and shutdown.
#
#   bench/callgrind.sh [N1] [N2] [TARGET]      (defaults 2000 8000 turnpike)
#
# TARGET `floor` counts the same for `gateway/examples/floor.rs` (a bare hyper proxy, no policy:
# issue 14's reference), by the same method. With KEEP=DIR the two callgrind profiles are kept
# there (callgrind.N1, callgrind.N2) for `callgrind_annotate --inclusive=yes` or
# `bench/callgrind-diff.py`. BIN=path profiles that binary instead of building (an earlier build
# kept for a before/after comparison). DOC=1 gives the API an OpenAPI document of 125 paths
# (templated and overlapping, GitHub-like) and calls `/repos/octo/hello/issues/42`, so every
# request walks the operation trie to `GET /repos/{owner}/{repo}/issues/{number}` (issue 18's
# attribution); without it the document has no paths and calls count as `unmatched`.
# TRACE=off|on|otlp (issue 15; unset: the binary's defaults, for binaries older than the keys):
# `off` sets trace_context = false; `on` sets it true (propagation and log ids, no export);
# `otlp` also exports every span to a local OTLP/HTTP sink (a Python server answering 200).
# TRACEPARENT=1 makes the client send a valid `traceparent` (continued instead of started).
# Needs valgrind and nginx (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${1:-2000}
N2=${2:-8000}
TARGET=${3:-turnpike}
case "$TARGET" in turnpike | floor) ;; *) echo "TARGET must be turnpike or floor" >&2; exit 1 ;; esac
W=$(mktemp -d /tmp/turnpike-callgrind.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
for tool in valgrind nginx; do command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y valgrind nginx" >&2; exit 1; }; done
if [ -n "${BIN:-}" ]; then
  [ -x target/release/examples/bench_setup ] || cargo build --release --quiet --example bench_setup
elif [ "$TARGET" = floor ]; then
  cargo build --release --quiet -p turnpike-gateway --example floor
else
  cargo build --release --quiet --bin turnpike --example bench_setup
fi
PROG=${BIN:-target/release/turnpike}
[ "$TARGET" = floor ] && PROG=${BIN:-target/release/examples/floor}
UP=18120; GW=18121
cat > "$W/up.conf" <<CONF
worker_processes 1; daemon off; pid $W/up.pid; error_log $W/up.err;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
CONF
nginx -c "$W/up.conf" -p "$W" & PIDS+=($!)
KEY=none
[ "$TARGET" = turnpike ] && KEY=$(target/release/examples/bench_setup "sqlite://$W/tp.db" "http://127.0.0.1:$UP" 1)
REQ_PATH=/bench/x
if [ -n "${DOC:-}" ] && [ "$TARGET" = turnpike ]; then
  REQ_PATH=/bench/repos/octo/hello/issues/42
  python3 - "$W/tp.db" <<'PYDOC'
import json, sqlite3, sys
paths = {}
for i in range(60):
    paths[f"/orgs/{{org}}/teams/t{i}"] = {"get": {}}
    paths[f"/repos/{{owner}}/{{repo}}/r{i}"] = {"get": {}, "post": {}}
paths["/repos/{owner}/{repo}/issues/{number}"] = {"get": {}, "patch": {}}
paths["/repos/{owner}/{repo}/issues"] = {"get": {}, "post": {}}
paths["/repos/{owner}/{repo}"] = {"get": {}}
paths["/users/me"] = {"get": {}}
paths["/users/{id}"] = {"get": {}, "delete": {}}
doc = json.dumps({"openapi": "3.1.0", "info": {"title": "bench", "version": "1"}, "paths": paths})
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE apis SET openapi = ?", (doc,))
db.commit()
PYDOC
fi

TRACE_ENV=()
case "${TRACE:-}" in
  "") ;;
  off) TRACE_ENV=(TURNPIKE_TRACE_CONTEXT=false) ;;
  on) TRACE_ENV=(TURNPIKE_TRACE_CONTEXT=true) ;;
  otlp)
    SINK=$((GW + 2))
    python3 - "$SINK" <<'PYSINK' & PIDS+=($!)
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PYSINK
    TRACE_ENV=(TURNPIKE_TRACE_CONTEXT=true TURNPIKE_OTLP_ENDPOINT="http://127.0.0.1:$SINK") ;;
  *) echo "TRACE must be off, on or otlp" >&2; exit 1 ;;
esac

instructions() { # N -> total instructions of a run serving N requests
  local n=$1 out="$W/callgrind.$1"
  if [ "$TARGET" = floor ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" "$PROG" "127.0.0.1:$GW" "http://127.0.0.1:$UP" 1 \
      > /dev/null 2> "$W/vg.$n.log" &
  else
    TURNPIKE_DATABASE_URL="sqlite://$W/tp.db" TURNPIKE_GATEWAY_ADDR="127.0.0.1:$GW" TURNPIKE_METRICS_ADDR="127.0.0.1:$((GW + 1))" \
      TURNPIKE_WORKER_THREADS=1 TURNPIKE_FLUSH_INTERVAL_MS=3600000 env ${TRACE_ENV[@]+"${TRACE_ENV[@]}"} \
      valgrind --tool=callgrind --callgrind-out-file="$out" "$PROG" gateway > /dev/null 2> "$W/vg.$n.log" &
  fi
  local pid=$!
  for _ in $(seq 1 600); do (exec 3<>/dev/tcp/127.0.0.1/$GW) 2>/dev/null && break; sleep 0.1; done
  python3 - "$GW" "$KEY" "$n" "$REQ_PATH" "${TRACEPARENT:-}" <<'PY'
import sys, http.client
port, key, n, path, tp = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
headers = {"X-API-Key": key}
if tp:
    headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("GET", path, headers=headers)
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
  kill -TERM "$pid"; wait "$pid" || true
  [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cat "$out"* > "$KEEP/callgrind.$n"
  cat "$out"* | awk '/^summary:/ {s += $2} END {printf "%d\n", s}'
}
I1=$(instructions "$N1")
I2=$(instructions "$N2")
echo "instructions: N=$N1 -> $I1, N=$N2 -> $I2"
echo "instructions per request ($TARGET): $(( (I2 - I1) / (N2 - N1) ))"
