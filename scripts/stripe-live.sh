#!/usr/bin/env bash
# Manual: the Stripe journey against a real Stripe TEST-MODE account. Not run in CI.
#
#   STRIPE_SECRET_KEY=sk_test_… scripts/stripe-live.sh
#
# What it does (each step prints what to look at in the Stripe dashboard, test mode):
#   1. refuses anything but an sk_test_ key;
#   2. starts `turnpike serve` on a SQLite file under target/stripe-live/ with the key and the
#      webhook secret of a `stripe listen` session (the Stripe CLI forwards test-mode events to
#      /webhooks/stripe), and prints the portal URL.
# Then, by hand:
#   3. create a paid plan in the admin console; within a second the worker's catalogue sync
#      creates Product `turnpike_plan_{id}` and Price `turnpike_plan_{id}_v{n}` (restart the
#      script: still one of each);
#   4. sign up, subscribe through Checkout with the test card 4242 4242 4242 4242
#      (SCA: 4000 0027 6000 3184; SEPA: DE89 3704 0044 0532 0130 00);
#   5. cancel at the period end, then now, in the portal: the dashboard's subscription shows
#      "cancels at period end", then "canceled" (one cancellation in its event log);
#   6. change the plan in the Customer Portal: the gateway's RateLimit-Policy follows;
#   7. `stripe trigger charge.refunded` and `stripe trigger invoice.payment_action_required`
#      exercise the refund and SCA handlers (the SCA email is in the outbox).
# Nothing here touches live mode; the SQLite file is kept for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${STRIPE_SECRET_KEY:?set STRIPE_SECRET_KEY to a test-mode key (sk_test_…)}"
case "$STRIPE_SECRET_KEY" in
  sk_test_*) ;;
  *) echo "refusing: not a test-mode key (must start with sk_test_)" >&2; exit 2 ;;
esac
command -v stripe >/dev/null || { echo "needs the Stripe CLI (stripe listen / stripe trigger)" >&2; exit 2; }

dir=target/stripe-live
mkdir -p "$dir"
db="sqlite://$dir/turnpike.db?mode=rwc"
port=${STRIPE_LIVE_PORT:-8480}

# The webhook secret of the CLI's forwarding session (printed, never logged by Turnpike).
webhook_secret=$(stripe listen --api-key "$STRIPE_SECRET_KEY" --print-secret)
stripe listen --api-key "$STRIPE_SECRET_KEY" --forward-to "http://127.0.0.1:$port/webhooks/stripe" >"$dir/listen.log" 2>&1 &
listen_pid=$!
trap 'kill "$listen_pid" ${serve_pid:+"$serve_pid"} 2>/dev/null || true' EXIT

cargo build --bin turnpike
export TURNPIKE_DATABASE_URL="$db" TURNPIKE_STRIPE_SECRET_KEY="$STRIPE_SECRET_KEY" TURNPIKE_STRIPE_WEBHOOK_SECRET="$webhook_secret"
export TURNPIKE_PORTAL_ADDR="127.0.0.1:$port"
target/debug/turnpike migrate
target/debug/turnpike serve >"$dir/serve.log" 2>&1 &
serve_pid=$!

echo "Portal: http://127.0.0.1:$port  (create a paid plan in the admin console, then subscribe)"
echo "Catalogue: https://dashboard.stripe.com/test/products?active=true  (lookup keys turnpike_plan_*)"
echo "Logs: $dir/serve.log, $dir/listen.log. Ctrl-C ends the run."
wait "$serve_pid"
