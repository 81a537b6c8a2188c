// The dev command's demo: signs and sends sample SightMill webhooks to a running worker, shows each
// answer, then prints the contacts the Contacts API simulator now holds.
//   node scripts/demo.mjs --worker URL --simulator URL --secret whsec_...

import { parseArgs } from "node:util";
import { sightmillEvent, signedDelivery } from "../tests/support/webhooks.mjs";

const { values: args } = parseArgs({
  options: {
    worker: { type: "string", default: "http://127.0.0.1:8787" },
    simulator: { type: "string", default: "http://127.0.0.1:8788" },
    secret: { type: "string" },
  },
});
if (!args.secret) throw new Error("--secret whsec_... is required");

const run = Date.now().toString(36);
const grace = { id: `sm_grace_${run}`, email: "grace@example.com", name: "Grace Hopper", phone: "+15550101", status: "lead" };
const alan = { id: `sm_alan_${run}`, email: "alan@example.com", name: "Alan Turing", status: "customer" };
const later = new Date().toISOString();

const steps = [
  ["contact.created (Grace)", sightmillEvent("contact.created", grace)],
  ["contact.created (Alan)", sightmillEvent("contact.created", alan)],
  ["contact.updated (Grace becomes a customer)", sightmillEvent("contact.updated", { ...grace, status: "customer", updated_at: later })],
  ["redelivery of the same webhook (sends nothing)", "redeliver"],
  ["a webhook with a bad signature (refused)", "forged"],
];

let last;
for (const [label, step] of steps) {
  let delivery;
  if (step === "redeliver") delivery = last;
  else if (step === "forged") delivery = signedDelivery(args.secret, steps[0][1], { signature: "v1,Zm9yZ2Vk" });
  else delivery = signedDelivery(args.secret, step);
  last = delivery;
  const response = await fetch(`${args.worker}/webhooks/sightmill`, delivery);
  console.log(`demo: ${label}\n      -> ${response.status} ${await response.text()}`);
}

const state = await fetch(`${args.simulator}/__control/state`).then((r) => r.json());
const counts = await fetch(`${args.simulator}/__control/counts`).then((r) => r.json());
console.log("\ndemo: the simulator now holds these contacts:");
for (const c of state.contacts) {
  const status = c.customFields?.find((f) => f.id === "sightmill_status")?.value;
  console.log(`      ${c.id}  ${c.firstName ?? ""} ${c.lastName ?? ""}  ${c.email ?? ""}  status=${status ?? "-"}`);
}
console.log(`demo: Contacts API calls by route: ${JSON.stringify(counts)}`);
