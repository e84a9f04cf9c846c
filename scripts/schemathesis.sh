#!/usr/bin/env bash
# Property-based tests of the portal's JSON API with schemathesis (from PyPI) against the
# document the server itself serves at /api/openapi.json.
#
# Installs schemathesis into target/schemathesis-venv if missing, builds `turnpike`, starts
# `turnpike serve` on free loopback ports with a temporary SQLite database, creates an account and
# a personal access token with every scope with the CLI, runs schemathesis with that token, stops the server, and
# exits non-zero on any failure (a 5xx, a response that breaks the schema, or an undocumented
# status code).
#
# Environment: SCHEMATHESIS_VERSION (pin, default 4.32.5), SCHEMATHESIS_MAX_EXAMPLES (per
# operation, default 100), SCHEMATHESIS_SEED (default: random).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
VENV="$PWD/target/schemathesis-venv"
ST="$VENV/bin/schemathesis"

log() { printf '\n== %s ==\n' "$*"; }

if ! "$ST" --version 2>/dev/null | grep -q "$VERSION"; then
  log "installing schemathesis $VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

log "building turnpike"
cargo build --quiet --bin turnpike
BIN="target/debug/turnpike"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Four free loopback ports (bound and released by the kernel's choice).
read -r P_PORTAL P_GATEWAY P_METRICS P_UPSTREAM < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)

export TURNPIKE_CONFIG="$WORK/none.toml"
export TURNPIKE_DATABASE_URL="sqlite://$WORK/turnpike.db"
export TURNPIKE_PORTAL_ADDR="127.0.0.1:$P_PORTAL"
export TURNPIKE_GATEWAY_ADDR="127.0.0.1:$P_GATEWAY"
export TURNPIKE_METRICS_ADDR="127.0.0.1:$P_METRICS"
export TURNPIKE_DEMO_UPSTREAM_ADDR="127.0.0.1:$P_UPSTREAM"
export TURNPIKE_LOG="${TURNPIKE_LOG:-warn}"
BASE="http://127.0.0.1:$P_PORTAL"

log "starting turnpike serve on $BASE"
# The first start seeds the demo API (so the catalog has something to serve).
"$BIN" serve >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  if grep -q '^ready' "$WORK/serve.log" 2>/dev/null; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$WORK/serve.log" >&2; echo "turnpike serve exited" >&2; exit 1; fi
  sleep 0.2
done
grep -q '^ready' "$WORK/serve.log" || { cat "$WORK/serve.log" >&2; echo "turnpike serve did not become ready" >&2; exit 1; }

log "creating an account and a personal access token"
EMAIL="schemathesis@example.test"
python3 -c 'import secrets; print(secrets.token_urlsafe(24))' | "$BIN" admin create-admin --email "$EMAIL" --password-stdin >/dev/null
# Every scope: the developer operations and the admin API (reads and writes) are all exercised.
TOKEN="$("$BIN" admin create-token --email "$EMAIL" --name schemathesis --scope developer --scope admin:write)"
[[ "$TOKEN" == tp_pat_* ]] || { echo "create-token printed no token" >&2; exit 1; }
# An app with a key, so the operations on existing resources get exercised too (ids 1 and 1).
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"fixture"}' "$BASE/api/v1/apps"
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"fixture key"}' "$BASE/api/v1/apps/1/keys"

run() {
  local checks="$1"
  log "schemathesis run ($checks)"
  # From the temporary directory: schemathesis and hypothesis keep caches in the working directory.
  (cd "$WORK" && "$ST" run "$BASE/api/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks "$checks" \
    ${EXCLUDE_CHECKS:+--exclude-checks "$EXCLUDE_CHECKS"} \
    --phases examples,coverage,fuzzing \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --request-timeout 10 \
    --suppress-health-check too_slow \
    --warnings off \
    ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"})
}

status=0
# Every check but `positive_data_acceptance` (ST202, "schema-valid request rejected"): the
# document does not yet carry every business rule (name patterns, numeric ranges, enums of
# query values), so a schema-valid name such as "\u0000" is still a documented 422.
EXCLUDE_CHECKS=positive_data_acceptance
run all || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "turnpike serve died during the run" >&2
  status=1
fi
if grep -q "$TOKEN" "$WORK/serve.log"; then
  echo "the token appeared in the server log" >&2
  status=1
fi
if [[ $status -ne 0 ]]; then
  echo "--- server log (tail) ---" >&2
  tail -n 50 "$WORK/serve.log" >&2
  exit "$status"
fi
log "schemathesis: no server errors, every response matches the schema"
