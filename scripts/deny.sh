#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (configuration: deny.toml).
#
#   scripts/deny.sh
#
# Installs cargo-deny (pinned, into /tmp/cargo-deny-root) if missing, then:
#   - `cargo deny check licenses bans sources`: must pass;
#   - `cargo deny check advisories` when the RustSec advisory database (a git repository on
#     github.com) can be fetched: must pass. When it cannot, a copy fetched earlier is used (and
#     its date printed); without one the check is SKIPPED with a loud banner, never silently.
# Duplicate major versions are warnings; each is reviewed in docs/dependencies.md.
#
# Environment: CARGO_DENY_VERSION (default 0.20.2), CARGO_DENY_ROOT (default /tmp/cargo-deny-root).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${CARGO_DENY_VERSION:-0.20.2}"
ROOT="${CARGO_DENY_ROOT:-/tmp/cargo-deny-root}"
DENY="$ROOT/bin/cargo-deny"
ADVISORY_DB="https://github.com/RustSec/advisory-db"

if ! "$DENY" --version 2>/dev/null | grep -qF "$VERSION"; then
  echo "installing cargo-deny $VERSION into $ROOT"
  cargo install cargo-deny --locked --version "$VERSION" --root "$ROOT"
fi

# The inclusion graphs of the reviewed duplicates would be hundreds of lines; `cargo deny check
# bans` without the flag shows them.
"$DENY" --locked check --hide-inclusion-graph licenses bans sources

banner() {
  printf '\n%s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
  printf '!!! %s\n' "$@"
  printf '%s\n\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
}

if timeout 20 git ls-remote --exit-code "$ADVISORY_DB" HEAD >/dev/null 2>&1; then
  "$DENY" --locked check advisories
  exit
fi
# cargo-deny keeps its clone under $CARGO_HOME/advisory-dbs/<name>-<hash>.
local_db=""
for d in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-*; do
  [[ -d "$d/.git" ]] && local_db="$d"
done
if [[ -n "$local_db" ]]; then
  banner "advisories: $ADVISORY_DB unreachable;" \
    "checking against the local copy of $(git -C "$local_db" log -1 --format=%cs) ($local_db)"
  "$DENY" --locked --offline check advisories
else
  banner "advisories: SKIPPED (advisory DB unreachable: cannot fetch $ADVISORY_DB," \
    "and no earlier copy in ${CARGO_HOME:-$HOME/.cargo}/advisory-dbs). Licenses, bans and sources were checked."
fi
