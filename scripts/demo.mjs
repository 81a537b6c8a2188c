// The dev command's demo: signs and sends sample SightMill webhooks to a running worker, shows each
// answer, lets the worker apply them (running the cron once for the event that had to wait), ends
// with one dead letter (a contact the simulator refuses once with a 400) to replay in the console,
// then prints what the Contacts API simulator holds and the operator status.
//   node scripts/demo.mjs --worker URL --simulator URL --secret whsec_... --admin-key KEY

import { parseArgs } from "node:util";
import { sightmillEvent, signedDelivery } from "../tests/support/webhooks.mjs";

const { values: args } = parseArgs({
  options: {
    worker: { type: "string", default: "http://127.0.0.1:8787" },
    simulator: { type: "string", default: "http://127.0.0.1:8788" },
    secret: { type: "string" },
    "admin-key": { type: "string" },
  },
});
if (!args.secret) throw new Error("--secret whsec_... is required");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const run = Date.now().toString(36);
const grace = { id: `sm_grace_${run}`, email: "Grace@Example.com", name: "Grace Hopper", phone: "(555) 010-0101", status: "lead" };
const alan = { id: `sm_alan_${run}`, email: "alan@example.com", name: "Alan Turing", status: "customer" };
const at = (minutes) => new Date(Date.now() + minutes * 60_000).toISOString();

const steps = [
  ["note.created for Alan before Alan exists (waits)", sightmillEvent("note.created", { id: `n1_${run}`, contact_id: alan.id, body: "Met at the conference", updated_at: at(0) })],
  ["contact.created (Grace)", sightmillEvent("contact.created", { ...grace, updated_at: at(0) })],
  ["contact.created (Alan)", sightmillEvent("contact.created", { ...alan, updated_at: at(0) })],
  ["contact.updated (Grace becomes a customer)", sightmillEvent("contact.updated", { ...grace, status: "customer", updated_at: at(1) })],
  ["tag.added (Grace: vip)", sightmillEvent("tag.added", { contact_id: grace.id, tag: "vip", updated_at: at(1) })],
  ["task.created (call Grace)", sightmillEvent("task.created", { id: `t1_${run}`, contact_id: grace.id, title: "Call Grace", due_date: at(60 * 24), updated_at: at(1) })],
  ["redelivery of the last webhook (sends nothing)", "redeliver"],
  ["a webhook with a bad signature (refused)", "forged"],
];

async function send(label, delivery) {
  const response = await fetch(`${args.worker}/webhooks/sightmill`, delivery);
  console.log(`demo: ${label}\n      -> ${response.status} ${await response.text()}`);
}

let last;
for (const [label, step] of steps) {
  if (step === "redeliver") {
    await sleep(500);
    await send(label, last);
    continue;
  }
  const delivery = step === "forged" ? signedDelivery(args.secret, steps[1][1], { signature: "v1,Zm9yZ2Vk" }) : signedDelivery(args.secret, step);
  last = delivery;
  await send(label, delivery);
}

// The waiting note is due again after the first retry delay (5 s in dev; 1 minute by default);
// run the cron by hand once it is, as the cron trigger would.
console.log("\ndemo: letting the worker apply the events, then running the cron for the note that waited");
await sleep(6000);
await fetch(`${args.worker}/__scheduled?cron=*+*+*+*+*`);
await sleep(500);

const get = (url, headers = {}) => fetch(url, { headers }).then((r) => r.json());

// One dead letter: the simulator refuses the next contact create once with a 400, which the
// worker parks at once (a 4xx is not retried). A replay in the console is accepted.
const ada = { id: `sm_ada_${run}`, email: "ada@example.com", name: "Ada Lovelace", phone: "+44 20 7946 0018", status: "lead" };
await fetch(`${args.simulator}/__control/faults`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ route: "POST /contacts/", status: 400, body: { statusCode: 400, message: "phone is invalid" } }),
});
const refused = signedDelivery(args.secret, sightmillEvent("contact.created", { ...ada, updated_at: at(2) }));
await send("contact.created (Ada; the simulator refuses it once with a 400: a dead letter)", refused);
await sleep(1500);
if (args["admin-key"]) {
  const parked = await get(`${args.worker}/admin/events?state=parked`, { authorization: `Bearer ${args["admin-key"]}` });
  const letter = (parked.events ?? []).find((event) => event.webhook_id === refused.id) ?? {};
  console.log(`demo: dead letter ${refused.id}: ${letter.reason ?? JSON.stringify(letter)}`);
  console.log("      replay it in the console (Events, Dead letters, open it, Replay): the simulator accepts it this time");
}
const state = await get(`${args.simulator}/__control/state`);
console.log("\ndemo: the simulator now holds:");
for (const c of state.contacts) {
  console.log(`      contact ${c.id}  ${c.firstName ?? ""} ${c.lastName ?? ""}  ${c.email ?? ""}  ${c.phone ?? ""}  tags=${JSON.stringify(c.tags)}`);
}
for (const n of state.notes) console.log(`      note    ${n.id}  on ${n.contactId}: ${n.body}`);
for (const t of state.tasks) console.log(`      task    ${t.id}  on ${t.contactId}: ${t.title} due ${t.dueDate}`);
console.log(`demo: Contacts API calls by route: ${JSON.stringify(await get(`${args.simulator}/__control/counts`))}`);
if (args["admin-key"]) {
  const status = await get(`${args.worker}/admin/status`, { authorization: `Bearer ${args["admin-key"]}` });
  console.log(`demo: operator status: ${JSON.stringify(status)}`);
}
