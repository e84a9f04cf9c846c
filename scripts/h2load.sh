#!/usr/bin/env bash
# HTTP/2 load and hostile-HTTP check of one gateway, fast enough for CI (well under a minute).
#
#   scripts/h2load.sh
#
# Starts `turnpike serve` (portal + the built-in Echo upstream) on a temporary SQLite database and
# a separate `turnpike gateway` on the same database, so the gateway's memory is measured alone.
# Creates an admin (CLI), a plan with high limits (admin JSON API), a token (CLI), an app and
# a key (JSON API), then:
#   1. `h2load -n 100000 -c 100 -m 10` over h2c (prior knowledge) with the key: 0 errored,
#      100000 succeeded, every response 2xx, and the key's metered usage exactly 100000 (+ the
#      smoke request);
#   2. oversized request headers: 431 over HTTP/1.1 (70 KiB) and HTTP/2 (32 KiB);
#   3. oversized bodies: 413 by declared length (a 1 GiB Content-Length, answered before the body
#      is sent) and by a streamed 1 GiB body (chunked over HTTP/1.1 and a DATA stream over HTTP/2),
#      each within 5 s and without the gateway's RSS growing by more than 16 MiB.
# Exits non-zero on the first failed check.
#
# Environment: H2LOAD_PROFILE (release|debug, default release: about 7 s of load here, where a
# debug build took minutes), H2LOAD_REQUESTS (default 100000).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

PROFILE="${H2LOAD_PROFILE:-release}"
REQUESTS="${H2LOAD_REQUESTS:-100000}"
case "$PROFILE" in
  debug) cargo build --quiet --bin turnpike ;;
  release) cargo build --quiet --release --bin turnpike ;;
  *) die "H2LOAD_PROFILE is debug or release" ;;
esac
BIN="$PWD/target/$PROFILE/turnpike"

missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
curl -V | grep -qw HTTP2 || die "this curl has no HTTP/2 support"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r P_PORTAL P_SGW P_SMET P_UP P_GW P_GMET < <(free_ports 6)
export TURNPIKE_CONFIG="$WORK/none.toml"
export TURNPIKE_DATABASE_URL="sqlite://$WORK/turnpike.db"
export TURNPIKE_LOG="${TURNPIKE_LOG:-warn}"
BASE="http://127.0.0.1:$P_PORTAL"
GW="http://127.0.0.1:$P_GW"

log "starting turnpike serve (portal + Echo upstream) and a turnpike gateway ($PROFILE build)"
start_serve "$BIN" "$WORK" "$P_PORTAL" "$P_SGW" "$P_SMET" "$P_UP"
# The access log would write one line per request: off, this is not what is measured here.
TURNPIKE_GATEWAY_ADDR="127.0.0.1:$P_GW" TURNPIKE_METRICS_ADDR="127.0.0.1:$P_GMET" TURNPIKE_ACCESS_LOG=false \
  "$BIN" gateway >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_ready "$GW_PID" "$WORK/gateway.log"

log "admin, plan 'h2load' on the Echo API, app and key"
read -r APP_ID KEY_ID KEY TOKEN < <(setup_key "$BIN" "$BASE" ops@example.test 1 h2load 1000000 10000000 1000000000)
AUTH="Authorization: Bearer $KEY"
code=$(curl -sS -o /dev/null -w '%{http_code}' --http2-prior-knowledge -H "$AUTH" "$GW/echo/smoke")
[[ "$code" == 200 ]] || die "smoke request over h2c answered $code"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status"; }

log "h2load -n $REQUESTS -c 100 -m 10 (h2c)"
h2load -n "$REQUESTS" -c 100 -m 10 -H "$AUTH" "$GW/echo/h2load" | tee "$WORK/h2load.txt" | sed -n '/^finished/,$p'
summary=$(grep -E '^requests:' "$WORK/h2load.txt")
codes=$(grep -E '^status codes:' "$WORK/h2load.txt")
grep -q '^Application protocol: h2c' "$WORK/h2load.txt" || die "h2load did not speak h2c"
[[ "$summary" =~ ([0-9]+)\ succeeded,\ ([0-9]+)\ failed,\ ([0-9]+)\ errored ]] || die "cannot read h2load's summary: $summary"
ok=${BASH_REMATCH[1]} failed=${BASH_REMATCH[2]} errored=${BASH_REMATCH[3]}
[[ "$codes" =~ ^status\ codes:\ ([0-9]+)\ 2xx, ]] || die "cannot read h2load's status codes: $codes"
two=${BASH_REMATCH[1]}
[[ "$errored" == 0 && "$failed" == 0 ]] || die "h2load: $failed failed, $errored errored"
[[ "$ok" == "$REQUESTS" && "$two" == "$REQUESTS" ]] || die "h2load: $ok succeeded and $two 2xx of $REQUESTS"
echo "h2load: $ok succeeded, 0 failed, 0 errored, $two 2xx"

log "metered usage of the key"
want=$((REQUESTS + 1))
calls=""
for _ in $(seq 1 50); do
  calls=$(curl -fsS -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/apps/$APP_ID/keys/$KEY_ID/usage" | jq .calls)
  [[ "$calls" == "$want" ]] && break
  sleep 0.2
done
[[ "$calls" == "$want" ]] || die "usage of the key: $calls calls metered, $want answered"
echo "usage: $calls calls metered = $REQUESTS (h2load) + 1 (smoke)"

log "oversized request headers"
# big_header KIB FILE: one `X-Big` header of KIB KiB, for `curl -H @FILE`.
big_header() { head -c $(($1 * 1024)) /dev/zero | tr '\0' a | sed 's/^/X-Big: /' >"$2"; }
# HTTP/1.1 reads at most 64 KiB of request head.
big_header 70 "$WORK/h70"
code=$(curl -sS -o /dev/null -w '%{http_code}' --http1.1 -H "$AUTH" -H @"$WORK/h70" "$GW/echo/x")
[[ "$code" == 431 ]] || die "oversized headers over HTTP/1.1 answered $code, expected 431"
echo "HTTP/1.1, 70 KiB header: 431"
# HTTP/2 announces a 16 KiB header list limit in SETTINGS; a 32 KiB list is answered 431 (much
# larger blocks get the stream refused before they are decoded).
big_header 32 "$WORK/h32"
code=$(curl -sS -o /dev/null -w '%{http_code}' --http2-prior-knowledge -H "$AUTH" -H @"$WORK/h32" "$GW/echo/x")
[[ "$code" == 431 ]] || die "oversized headers over HTTP/2 answered $code, expected 431"
echo "HTTP/2, 32 KiB header: 431"
code=$(curl -sS -o /dev/null -w '%{http_code}' --http2-prior-knowledge -H "$AUTH" "$GW/echo/after")
[[ "$code" == 200 ]] || die "the gateway answered $code after the oversized headers"

log "oversized bodies (max_body_bytes 10 MiB; 1 GiB offered)"
truncate -s 1G "$WORK/1g"
rss_before=$(rss_kb)
# check_413 LABEL MS CODE: the answer of a request that took MS ms; 413 within 5 s (reading or
# buffering a 1 GiB body takes far longer) with the body_too_large problem in $WORK/413.out.
check_413() {
  [[ "$3" == 413 ]] || die "$1: answered '$3', expected 413 ($(head -c 300 "$WORK/413.err"))"
  grep -q '"code":"body_too_large"' "$WORK/413.out" || die "$1: not a body_too_large problem: $(head -c 300 "$WORK/413.out")"
  (($2 < 5000)) || die "$1: 413 took $2 ms"
  echo "$1: 413 body_too_large in $2 ms"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# curl_413 LABEL CURL-ARGS...: POST the body described by the arguments over HTTP/1.1.
curl_413() {
  local label=$1 start code
  shift
  start=$(now_ms)
  code=$(timeout 20 curl -sS -o "$WORK/413.out" -w '%{http_code}' --http1.1 -X POST -H "$AUTH" "$@" "$GW/echo/upload" 2>"$WORK/413.err" || true)
  check_413 "$label" $(($(now_ms) - start)) "$code"
}
# nghttp_413 LABEL NGHTTP-ARGS...: the same over HTTP/2 with nghttp (same package as h2load):
# the gateway answers 413 and then resets the unread stream with NO_ERROR (RFC 9113 8.1), which
# nghttp reads as it should, while this curl (7.88) reports a framing error instead of the 413.
nghttp_413() {
  local label=$1 start code
  shift
  start=$(now_ms)
  timeout 20 nghttp -v -H "authorization: Bearer $KEY" "$@" "$GW/echo/upload" >"$WORK/413.out" 2>"$WORK/413.err" || true
  code=$(sed -n 's/.*recv (stream_id=[0-9]*) :status: \([0-9]*\).*/\1/p' "$WORK/413.out" | head -n1)
  check_413 "$label" $(($(now_ms) - start)) "$code"
}
curl_413 "HTTP/1.1, Content-Length: 1 GiB" -T "$WORK/1g"
curl_413 "HTTP/1.1, chunked 1 GiB stream" -H 'Transfer-Encoding: chunked' -T "$WORK/1g"
nghttp_413 "HTTP/2, content-length: 1 GiB" -d "$WORK/1g"
nghttp_413 "HTTP/2, 1 GiB DATA stream (no length)" --no-content-length -d "$WORK/1g"
rss_after=$(rss_kb)
growth=$(((rss_after - rss_before) / 1024))
echo "gateway RSS: $((rss_before / 1024)) MiB before the oversized bodies, $((rss_after / 1024)) MiB after"
((growth < 16)) || die "the gateway's RSS grew by $growth MiB over the oversized bodies: were they buffered?"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "$AUTH" "$GW/echo/after")
[[ "$code" == 200 ]] || die "the gateway answered $code after the oversized bodies"

stop_pid "$GW_PID" || die "the gateway exited with status $? on SIGTERM"
log "h2load check passed"
