#!/usr/bin/env bash
# The dev command: installs what is missing, starts the Contacts API simulator and the worker under
# `wrangler dev` (local workerd, local KV under .dev/state), sends a short demo of signed SightMill
# webhooks (ending with one dead letter to replay in the console), prints what the simulator now
# holds, the console's URL and its key, and keeps both serving until Ctrl-C.
#   WORKER_PORT (8787) and SIMULATOR_PORT (8788) choose the ports.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false

WORKER_PORT=${WORKER_PORT:-8787}
SIMULATOR_PORT=${SIMULATOR_PORT:-8788}
LOCATION=dev-location
TOKEN=dev-private-integration-token
SECRET="whsec_$(printf 'sightmill-sync-local-dev-secret!' | base64)"
ADMIN_KEY=dev-admin-key-0123456789
MAPPING='{"fields":[{"from":"name","to":"firstName+lastName","transforms":["trim"]},{"from":"email","to":"email","transforms":["trim","lowercase"]},{"from":"phone","to":"phone","transforms":["e164"]},{"value":"sightmill","to":"source"}],"status":{"to":"tag","prefix":"status:"},"default_country_code":"1"}'
mkdir -p .dev
pids=()

stop() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

bash scripts/setup.sh

echo "dev: starting the Contacts API simulator on 127.0.0.1:$SIMULATOR_PORT"
setsid node tests/simulator/cli.mjs --port "$SIMULATOR_PORT" \
  --token "$TOKEN:$LOCATION" --location "$LOCATION:noduplicates" >.dev/simulator.log 2>&1 &
pids+=($!)

# Settings and dev-only secrets for the local worker (never used outside this machine).
cat >.dev/dev.env <<EOF
GHL_LOCATION_ID=$LOCATION
CONTACTS_API_BASE=http://127.0.0.1:$SIMULATOR_PORT
WEBHOOK_SECRETS=$SECRET
CONTACTS_API_TOKEN=$TOKEN
ADMIN_API_KEYS=$ADMIN_KEY
CONTACT_MAPPING='$MAPPING'
RETRY_SCHEDULE=5s,30s,5m,30m,2h
EOF

echo "dev: starting wrangler dev on 127.0.0.1:$WORKER_PORT (it builds the worker first; logs in .dev/wrangler.log)"
setsid npx wrangler dev --ip 127.0.0.1 --port "$WORKER_PORT" --inspector-port 0 \
  --show-interactive-dev-session=false --persist-to .dev/state --env-file .dev/dev.env --test-scheduled >.dev/wrangler.log 2>&1 &
pids+=($!)

healthy() { node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "http://127.0.0.1:$WORKER_PORT/healthz"; }
for _ in $(seq 1 300); do
  healthy && break
  kill -0 "${pids[1]}" 2>/dev/null || { echo "dev: wrangler dev exited:"; tail -30 .dev/wrangler.log; exit 1; }
  sleep 1
done
healthy || { echo "dev: the worker did not come up"; tail -30 .dev/wrangler.log; exit 1; }

node scripts/demo.mjs --worker "http://127.0.0.1:$WORKER_PORT" \
  --simulator "http://127.0.0.1:$SIMULATOR_PORT" --secret "$SECRET" --admin-key "$ADMIN_KEY"

cat <<EOF

dev: running. Console: http://127.0.0.1:$WORKER_PORT/console/ (sign in with the key $ADMIN_KEY;
     the dead letter above is under Events, Dead letters: open it and Replay)
     Webhooks: http://127.0.0.1:$WORKER_PORT/webhooks/sightmill
     Simulator state: http://127.0.0.1:$SIMULATOR_PORT/__control/state
     Signing secret for your own webhooks: $SECRET
     Operator API: curl -H "Authorization: Bearer $ADMIN_KEY" http://127.0.0.1:$WORKER_PORT/admin/status
     Settings check: curl http://127.0.0.1:$WORKER_PORT/health
     Run the cron now: curl http://127.0.0.1:$WORKER_PORT/__scheduled
     Logs: .dev/wrangler.log and .dev/simulator.log. Ctrl-C stops everything.
EOF
wait
