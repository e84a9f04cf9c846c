# Shared by the scripts in this directory (sourced, not run): free ports, waiting for a process to
# say "ready", and setting up an admin, a plan, an app and a key through the CLI, the admin
# console's forms and the JSON API -- the way an operator would, so the scripts need no Rust.
#
# Every function writes its diagnostics to stderr and returns non-zero on failure; callers run
# with `set -euo pipefail`.

log() { printf '\n== %s ==\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# free_ports N: N distinct free loopback ports (bound together, so no duplicates, then released).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# wait_ready PID LOG [SECONDS]: wait until the process prints its `ready` line (every role does,
# after its listeners are bound); fail with the log's tail if it exits or takes too long.
wait_ready() {
  local pid=$1 out=$2 secs=${3:-60} i
  for ((i = 0; i < secs * 10; i++)); do
    grep -q '^ready' "$out" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$out" >&2
      die "process $pid exited before it was ready (log: $out)"
    fi
    sleep 0.1
  done
  tail -n 30 "$out" >&2
  die "process $pid was not ready after ${secs}s (log: $out)"
}

# start_serve BIN WORK PORTAL_PORT GATEWAY_PORT METRICS_PORT UPSTREAM_PORT: `turnpike serve` (the
# portal and the Echo upstream; its own gateway is not the one measured) on those loopback ports,
# logging to WORK/serve.log; sets SERVE_PID, appends it to the caller's PIDS, waits for `ready`.
start_serve() {
  local bin=$1 work=$2
  TURNPIKE_PORTAL_ADDR="127.0.0.1:$3" TURNPIKE_GATEWAY_ADDR="127.0.0.1:$4" TURNPIKE_METRICS_ADDR="127.0.0.1:$5" \
    TURNPIKE_DEMO_UPSTREAM_ADDR="127.0.0.1:$6" "$bin" serve >"$work/serve.log" 2>&1 &
  SERVE_PID=$!
  PIDS+=("$SERVE_PID")
  wait_ready "$SERVE_PID" "$work/serve.log"
}

# stop_pid PID [SECONDS]: SIGTERM (drain + final meter flush), wait for the exit, return its status.
stop_pid() {
  local pid=$1 secs=${2:-60} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "process $pid still running ${secs}s after SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  return "$rc"
}

# admin_create_plan TOKEN BASE API_ID SLUG RATE BURST QUOTA: add a default plan to an API through
# the admin JSON API (TOKEN needs the admin:write scope); QUOTA empty is unlimited.
admin_create_plan() {
  local token=$1 base=$2 api=$3 body code
  body=$(jq -n --arg slug "$4" --argjson rate "$5" --argjson burst "$6" --arg quota "$7" \
    '{slug: $slug, name: $slug, rate_per_second: $rate, burst: $burst, is_default: true,
      monthly_quota: (if $quota == "" then null else ($quota | tonumber) end)}')
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$body" "$base/api/v1/admin/apis/$api/plans")
  [[ "$code" == 201 ]] || die "creating plan $4 on API $api answered $code (expected 201)"
}

# api_post TOKEN URL JSON: POST to the portal's JSON API; prints the response body.
api_post() {
  curl -fsS -H "Authorization: Bearer $1" -H 'Content-Type: application/json' -d "$3" "$2"
}

# setup_key BIN BASE ADMIN_EMAIL API_ID PLAN RATE BURST QUOTA: an admin and a personal access
# token with the developer and admin:write scopes (CLI), a default plan on the API (admin JSON
# API), an app subscribed to the default plans and a key (JSON API). Prints "APP_ID KEY_ID SECRET
# TOKEN".
setup_key() {
  local bin=$1 base=$2 email=$3 api=$4 token app key
  "$bin" admin create-admin --email "$email" >/dev/null
  token=$("$bin" admin create-token --email "$email" --name scripts --scope developer --scope admin:write)
  [[ "$token" == tp_pat_* ]] || die "create-token printed no token"
  admin_create_plan "$token" "$base" "$api" "$5" "$6" "$7" "$8"
  app=$(api_post "$token" "$base/api/v1/apps" '{"name":"load"}' | jq -r .id)
  key=$(api_post "$token" "$base/api/v1/apps/$app/keys" '{"name":"load key"}')
  local plan
  plan=$(curl -fsS -H "Authorization: Bearer $token" "$base/api/v1/apps/$app/subscriptions" |
    jq -r --argjson api "$api" '.[] | select(.api_id == $api) | .plan_slug')
  [[ "$plan" == "$5" ]] || die "the new app is on plan '$plan' of API $api, expected '$5'"
  printf '%s %s %s %s\n' "$app" "$(jq -r .key.id <<<"$key")" "$(jq -r .secret <<<"$key")" "$token"
}
