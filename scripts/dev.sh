#!/usr/bin/env bash
# The dev command: installs what is missing, starts the Contacts API simulator and the worker under
# `wrangler dev` (local workerd, local KV under .dev/state), sends a short demo of signed SightMill
# webhooks, prints what the simulator now holds, and keeps both serving until Ctrl-C.
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

echo "dev: starting wrangler dev on 127.0.0.1:$WORKER_PORT (it builds the worker first; logs in .dev/wrangler.log)"
setsid npx wrangler dev --ip 127.0.0.1 --port "$WORKER_PORT" --inspector-port 0 \
  --show-interactive-dev-session=false --persist-to .dev/state \
  --var "GHL_LOCATION_ID:$LOCATION" \
  --var "CONTACTS_API_BASE:http://127.0.0.1:$SIMULATOR_PORT" \
  --var "WEBHOOK_SECRETS:$SECRET" \
  --var "CONTACTS_API_TOKEN:$TOKEN" \
  --var "STATUS_CUSTOM_FIELD_ID:sightmill_status" >.dev/wrangler.log 2>&1 &
pids+=($!)

healthy() { node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "http://127.0.0.1:$WORKER_PORT/healthz"; }
for _ in $(seq 1 300); do
  healthy && break
  kill -0 "${pids[1]}" 2>/dev/null || { echo "dev: wrangler dev exited:"; tail -30 .dev/wrangler.log; exit 1; }
  sleep 1
done
healthy || { echo "dev: the worker did not come up"; tail -30 .dev/wrangler.log; exit 1; }

node scripts/demo.mjs --worker "http://127.0.0.1:$WORKER_PORT" \
  --simulator "http://127.0.0.1:$SIMULATOR_PORT" --secret "$SECRET"

cat <<EOF

dev: running. Worker: http://127.0.0.1:$WORKER_PORT/webhooks/sightmill
     Simulator state: http://127.0.0.1:$SIMULATOR_PORT/__control/state
     Signing secret for your own webhooks: $SECRET
     Logs: .dev/wrangler.log and .dev/simulator.log. Ctrl-C stops everything.
EOF
wait
