#!/usr/bin/env bash
# The deploy command: builds and deploys the worker, creates each secret that is missing with a
# strong random value, prints the webhook URL, the console URL and every secret it created (once:
# a second run creates nothing and prints no secret), then checks that the worker answers and its
# settings are valid (GET /health). It never changes or removes a secret that exists.
#   bash scripts/deploy.sh [CONFIG]   CONFIG: a wrangler config beside wrangler.toml (default wrangler.toml)
#   WRANGLER      the wrangler command (default `npx wrangler`; the tests point it at a stand-in)
#   WORKER_URL    the worker's URL when it is not the one wrangler prints (a custom domain)
#   CONTACTS_API_TOKEN, OAUTH_CLIENT_SECRET  if set in the environment and missing in Cloudflare,
#                 uploaded as they are (they cannot be made up); never printed
# Secret values travel only through pipes (`wrangler secret bulk` reads stdin): none is written
# to a file. docs/configuration.md describes every setting and secret.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false

config=${1:-wrangler.toml}
read -r -a wrangler <<<"${WRANGLER:-npx wrangler}"
run_wrangler() { "${wrangler[@]}" "$@" --config "$config"; }
say() { printf 'deploy: %s\n' "$*"; }
# A [vars] value as wrangler.toml writes it (`NAME = "value"`), empty when unset.
var() { sed -n "s/^$1 *= *\"\\(.*\\)\" *\$/\\1/p" "$config" | head -n 1; }

[ -f "$config" ] || { say "no $config here"; exit 1; }
location=$(var GHL_LOCATION_ID)
mode=$(var TOKEN_MODE)
mode=${mode:-private_integration}

say "installing what the build needs and is missing"
bash scripts/setup.sh --no-browser

# A first deploy creates the worker, its KV namespace (the binding has no id: wrangler provisions
# it) and its Durable Objects; a failed build stops here, before any secret is touched.
say "building and deploying (wrangler deploy runs scripts/build.sh)"
if ! deploy_log=$(run_wrangler deploy 2>&1); then
  printf '%s\n' "$deploy_log"
  say "wrangler deploy failed; no secret was changed"
  exit 1
fi
printf '%s\n' "$deploy_log"
url=${WORKER_URL:-$(printf '%s\n' "$deploy_log" | sed -n 's/^[[:space:]]*\(https\{0,1\}:\/\/[^[:space:]]*\)[[:space:]]*$/\1/p' | head -n 1)}
url=${url%/}

if ! listed=$(run_wrangler secret list --format json 2>&1); then
  printf '%s\n' "$listed"
  say "wrangler secret list failed; no secret was changed"
  exit 1
fi

# Which secrets to create, and their values, as one JSON object on stdout (kept in a variable).
created=$(LISTED="$listed" LOCATION="$location" MODE="$mode" node -e '
  const { randomBytes } = require("node:crypto");
  const text = process.env.LISTED;
  // The JSON list starts a line (wrangler may print a warning before it).
  const names = new Set(JSON.parse(text.slice(text.search(/^\[/m), text.lastIndexOf("]") + 1)).map((s) => s.name));
  const want = {
    ADMIN_API_KEYS: () => randomBytes(32).toString("base64url"),
    TOKEN_ENCRYPTION_KEYS: () => `k1:${randomBytes(32).toString("base64")}`,
  };
  if (process.env.LOCATION) want.WEBHOOK_SECRETS = () => `whsec_${randomBytes(32).toString("base64")}`;
  const given = process.env.MODE === "private_integration" ? (process.env.LOCATION ? "CONTACTS_API_TOKEN" : null) : "OAUTH_CLIENT_SECRET";
  if (given && process.env[given]?.trim()) want[given] = () => process.env[given].trim();
  const created = {};
  for (const [name, make] of Object.entries(want)) if (!names.has(name)) created[name] = make();
  process.stdout.write(JSON.stringify(created));
')

if [ "$created" = "{}" ]; then
  say "secrets: every one this deployment needs is already set; none changed"
else
  say "creating the missing secrets: $(printf '%s' "$created" | node -e 'process.stdout.write(Object.keys(JSON.parse(require("fs").readFileSync(0, "utf8"))).join(", "))')"
  if ! bulk_log=$(printf '%s' "$created" | run_wrangler secret bulk 2>&1); then
    printf '%s\n' "$bulk_log"
    say "wrangler secret bulk failed; run this command again (it creates only what is missing)"
    exit 1
  fi
fi

# Whether a secret is set now (listed before, or created above). Names only: never a value.
set_now=$(printf '%s' "$created" | node -e 'process.stdout.write(Object.keys(JSON.parse(require("fs").readFileSync(0, "utf8"))).join(" "))')
has_secret() { [[ " $set_now " == *" $1 "* ]] || printf '%s' "$listed" | grep -q "\"$1\""; }

[ -n "$url" ] || { say "wrangler printed no URL; set WORKER_URL and run again to check the worker"; exit 1; }

echo
say "worker:   $url"
say "console:  $url/console/"
if [ -n "$location" ]; then
  say "webhooks: $url/webhooks/sightmill (location $location)"
else
  say "webhooks: $url/webhooks/sightmill/<connection id>: create a connection in the console's"
  say "          Connections view; it shows the connection's signing secret once"
fi
# Each created secret, this once: Cloudflare never shows a secret again.
printf '%s' "$created" | node -e '
  const created = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const why = {
    ADMIN_API_KEYS: "the operator key: it opens the console and the operator API",
    WEBHOOK_SECRETS: "the signing secret: give it to SightMill with the webhook URL",
    TOKEN_ENCRYPTION_KEYS: "the encryption key: keep it; rotating it needs the old value (docs/security.md)",
  };
  const shown = Object.entries(created).filter(([name]) => why[name]);
  if (shown.length) console.log("deploy: created, shown this once (keep them in a password manager):");
  for (const [name, value] of shown) console.log(`deploy:   ${name} = ${value}\n            ${why[name]}`);
'
if [ -n "$location" ] && [ "$mode" = "private_integration" ] && ! has_secret CONTACTS_API_TOKEN; then
  say "CONTACTS_API_TOKEN is not set: run \`npx wrangler secret put CONTACTS_API_TOKEN\` (a Private"
  say "Integration Token of location $location; docs/tokens-and-connections.md), or run this again with it in the environment"
fi
if [ "$mode" != "private_integration" ] && ! has_secret OAUTH_CLIENT_SECRET; then
  say "OAUTH_CLIENT_SECRET is not set: \`npx wrangler secret put OAUTH_CLIENT_SECRET\` (docs/tokens-and-connections.md)"
fi

echo
say "checking $url/health"
HEALTH_URL="$url/health" node -e '
  const url = process.env.HEALTH_URL;
  const deadline = Date.now() + 60_000;
  (async () => {
    for (;;) {
      const answer = await fetch(url).then(async (r) => ({ status: r.status, body: await r.json().catch(() => null) }), () => null);
      if (answer?.status === 200) return console.log("deploy: the worker answers and its settings are valid");
      if (answer?.status === 503 && answer.body) {
        console.log(`deploy: the worker answers, but these settings are missing or invalid: ${answer.body.misconfigured.join(", ")}`);
        console.log("deploy: docs/configuration.md says what each takes; fix them and run this again");
        process.exit(1);
      }
      if (Date.now() > deadline) {
        console.log(`deploy: no answer from ${url} (${answer ? answer.status : "unreachable"}); a new workers.dev name can take a minute: run this again`);
        process.exit(1);
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();
'
