// Hostile input, end to end: one table of requests that try to get something past the worker on
// every route (the webhook, the operator API under /admin/, the read API under /contacts/ and
// /sightmill/contacts/, and routes that do not exist). Each row answers its status with a JSON
// body, sends nothing to the Contacts API and leaves the stored state exactly as it was: KV (keys,
// values and metadata; on the production KV model, not one write tried) and the Durable Object's
// (its queue, dead letters, the seeded webhook's record and its contact's links, through the
// operator API, the live mapping included). Rows marked `seeded` run after one webhook was
// applied, so that replays and id reuse have something to aim at; rows marked `live` with a live
// mapping saved; rows marked `connections` with two named connections created (loc-a and loc-b,
// each with its own signing secret), so that one connection's URL can be tried with another's
// secret and a scoped read key on a connection it does not name.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ADMIN_KEY,
  apiCalls,
  contactEvent,
  LOCATION,
  READ_KEYS,
  SECRET,
  sign,
  sleep,
  startWorld,
  TOKEN,
  WEBHOOK_PATH,
} from "./harness.mjs";
import { newSecret, signedDelivery } from "../support/webhooks.mjs";

const good = contactEvent("contact.created", { id: "sm_1", email: "a@example.com" });
const goodBody = JSON.stringify(good);
/** The webhook id the `seeded` rows find already applied. */
const SEEDED_ID = "msg_seeded";
const now = () => Math.floor(Date.now() / 1000);
const otherSecret = `whsec_${Buffer.from("another-key").toString("base64")}`;
/** Two named connections (rows marked `connections`), and a read key that reaches loc-a only. */
const CONNECTIONS = [
  { id: "loc-a", token: "pit-a-0123456789abcdef", secret: newSecret() },
  { id: "loc-b", token: "pit-b-0123456789abcdef", secret: newSecret() },
];
const SCOPED_KEY = "read-key-scoped-0123456789abcdef";
const WORLD = {
  duplicates: "refuse",
  vars: {
    TOKEN_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 9).toString("base64")}`,
    READ_API_KEYS: `${READ_KEYS.join(" ")} ${SCOPED_KEY}@loc-a`,
    // One read per key per 10 s (1% of 100), so that a row can find a key's budget spent.
    READ_KEY_SHARE_PERCENT: "1",
  },
  simulator: {
    tokens: { [TOKEN]: LOCATION, ...Object.fromEntries(CONNECTIONS.map((c) => [c.token, c.id])) },
    locations: Object.fromEntries([LOCATION, ...CONNECTIONS.map((c) => c.id)].map((id) => [id, { allowDuplicates: false }])),
  },
};
/** A delivery of `good` to a named connection's URL, signed with `secret`. */
const toConnection = (id, secret) => (world) => world.fetch(`${WEBHOOK_PATH}/${id}`, signedDelivery(secret, good));

/** `text` percent-decoded, or as it is when it does not decode. */
function decodeOr(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `good` posted to a connection's URL with no signature headers at all. */
const unsignedTo = (id) => (world) =>
  world.fetch(`${WEBHOOK_PATH}/${id}`, { method: "POST", headers: { "content-type": "application/json" }, body: goodBody });

/** A new connection's body with `secret` as its signing secret. */
const weakConnection = (secret) =>
  JSON.stringify({ id: "loc-w", token: { kind: "private_integration", token: "pit-w-0123456789abcdef" }, signing_secret: secret });

/** A body that is `good` with `data` (or the envelope) changed. */
const withData = (type, data) => JSON.stringify(contactEvent(type, data));
const withEnvelope = (changes) => JSON.stringify({ ...good, ...changes });

/** A webhook delivery of `good`, broken by `overrides` (see signedDelivery). */
const webhook = (overrides = {}) => (world) => world.fetch(WEBHOOK_PATH, signedDelivery(SECRET, good, overrides));

/** A request on any path; `key` becomes a bearer Authorization header. */
const call =
  (path, { method = "GET", key, authorization, headers = {}, body } = {}) =>
  (world) => {
    const auth = authorization ?? (key === undefined ? undefined : `Bearer ${key}`);
    const all = { ...headers, ...(auth === undefined ? {} : { authorization: auth }) };
    return world.fetch(path, { method, headers: all, body });
  };
const asAdmin = (path, init = {}) => call(path, { key: ADMIN_KEY, ...init });
const asReader = (path, init = {}) => call(path, { key: READ_KEYS[0], ...init });

/** A valid mapping document, and one whose only field goes `to` a target. */
const MAPPING = JSON.stringify({ fields: [{ from: "email", to: "email", transforms: ["trim"] }] });
const mappingTo = (to) => JSON.stringify({ fields: [{ from: "email", to }] });

/** A signature that was valid for SEEDED_ID's delivery but is sent with one part changed. */
function resigned(change) {
  return (world) => {
    const timestamp = now();
    const signature = sign(SECRET, "msg_orig", timestamp, goodBody);
    const parts = { id: "msg_orig", timestamp, signature, rawBody: goodBody, ...change(timestamp) };
    return world.fetch(WEBHOOK_PATH, signedDelivery(SECRET, good, parts));
  };
}

/** A body streamed in 1 MiB chunks without a Content-Length. */
function chunkedWebhook(mebibytes) {
  return (world) => {
    const delivery = signedDelivery(SECRET, good, {});
    const chunk = new Uint8Array(1 << 20).fill(0x20);
    let sent = 0;
    const body = new ReadableStream({
      pull(controller) {
        if (sent++ < mebibytes) controller.enqueue(chunk);
        else controller.close();
      },
    });
    return world.fetch(WEBHOOK_PATH, { ...delivery, body, duplex: "half" });
  };
}

// [name, request, status, error code (or the JSON `status` of a non-error answer), options]
const WEBHOOK_ROWS = [
  // Signatures
  ["bad signature", webhook({ signature: "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }), 401, "invalid_signature"],
  ["signature by another secret", webhook({ secret: otherSecret }), 401, "invalid_signature"],
  ["missing signature header", webhook({ headers: { "webhook-signature": undefined } }), 401, "invalid_signature"],
  ["empty v1 signature", webhook({ signature: "v1," }), 401, "invalid_signature"],
  ["signature that is not base64", webhook({ signature: "v1,!!!not-base64!!!" }), 401, "invalid_signature"],
  ["only an unknown signature version", webhook({ signature: "v2,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" }), 401, "invalid_signature"],
  ["signature header of 4,000 entries", webhook({ signature: Array(4000).fill("v1,AAAA").join(" ") }), 401, "invalid_signature"],
  // Connections
  ["connection A's URL signed with B's secret", toConnection("loc-a", CONNECTIONS[1].secret), 401, "invalid_signature", { connections: true }],
  ["a named connection's URL signed with the default secret", toConnection("loc-a", SECRET), 401, "invalid_signature", { connections: true }],
  ["an unknown connection (answered as a wrong signature: ids cannot be probed)", toConnection("loc-nobody", SECRET), 401, "invalid_signature", { connections: true }],
  ["an unsigned delivery to a made-up connection", unsignedTo("loc-made-up"), 401, "invalid_signature", { connections: true }],
  ["an unsigned delivery to a connected id", unsignedTo("loc-a"), 401, "invalid_signature", { connections: true }],
  ["a connection id with path characters", toConnection("loc-a%2F..%2Floc-b", SECRET), 400, "invalid_path"],
  ["a connection id of an encoded climb to an internal route", toConnection("%2e%2e%2finternal%2faccept", SECRET), 400, "invalid_path"],
  ["a read key in the webhook's query", (world) => world.fetch(`${WEBHOOK_PATH}?x=${READ_KEYS[1]}`, signedDelivery(SECRET, good)), 400, "key_in_url"],
  ["a connection id with a dot", toConnection("loc.a", SECRET), 400, "invalid_connection_id"],
  ["a connection id of 65 characters", toConnection("a".repeat(65), SECRET), 400, "invalid_connection_id"],
  ["signature header of 64 KiB", webhook({ signature: `v1,${"A".repeat(64 * 1024)}` }), 401, "invalid_signature"],
  ["a signature over another body", resigned(() => ({ rawBody: goodBody.replace("a@example.com", "b@example.com") })), 401, "invalid_signature"],
  ["a signature moved to another webhook id", resigned(() => ({ id: "msg_other" })), 401, "invalid_signature"],
  ["a signature moved to another timestamp", resigned((t) => ({ timestamp: t + 1 })), 401, "invalid_signature"],
  // Ids and timestamps
  ["missing webhook-id", webhook({ headers: { "webhook-id": undefined } }), 401, "invalid_signature"],
  ["missing webhook-timestamp", webhook({ headers: { "webhook-timestamp": undefined } }), 401, "invalid_signature"],
  ["webhook-id with path characters", webhook({ id: "../../etc" }), 401, "invalid_signature"],
  ["webhook-id of 129 characters", webhook({ id: "a".repeat(129) }), 401, "invalid_signature"],
  ["webhook-id of 16 KiB", webhook({ id: "a".repeat(16 * 1024) }), 401, "invalid_signature"],
  ["webhook-id with non-ASCII", webhook({ id: "msg_é" }), 401, "invalid_signature"],
  ["stale timestamp", webhook({ timestamp: now() - 360 }), 401, "invalid_signature"],
  ["future timestamp", webhook({ timestamp: now() + 360 }), 401, "invalid_signature"],
  ["timestamp of 20 digits", webhook({ timestamp: "99999999999999999999" }), 401, "invalid_signature"],
  ["timestamp with a fraction", webhook({ timestamp: "1.5" }), 401, "invalid_signature"],
  ["negative timestamp", webhook({ timestamp: "-1" }), 401, "invalid_signature"],
  // Replays
  ["a replayed webhook id with a new body", webhook({ id: SEEDED_ID, rawBody: withData("contact.updated", { id: "sm_1", email: "x@example.com" }) }), 409, "webhook_id_reused", { seeded: true }],
  ["a replay of an applied webhook", webhook({ id: SEEDED_ID, rawBody: goodBody }), 200, "applied", { seeded: true, replayed: true }],
  ["a replay of an applied webhook after the tolerance", webhook({ id: SEEDED_ID, rawBody: goodBody, timestamp: now() - 3600 }), 401, "invalid_signature", { seeded: true }],
  // Bodies
  ["malformed JSON", webhook({ rawBody: '{"type": "contact.created",' }), 400, "malformed_json"],
  ["empty body", webhook({ rawBody: "" }), 400, "malformed_json"],
  ["deeply nested JSON", webhook({ rawBody: `${"[".repeat(100)}${"]".repeat(100)}` }), 400, "malformed_json"],
  ["100,000 levels of nesting", webhook({ rawBody: `{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}` }), 400, "malformed_json"],
  ["invalid UTF-8", webhook({ rawBody: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) }), 400, "malformed_json"],
  ["invalid UTF-8 inside a string", webhook({ rawBody: Buffer.concat([Buffer.from(goodBody.slice(0, 60)), Buffer.from([0xc3, 0x28]), Buffer.from(goodBody.slice(60))]) }), 400, "malformed_json"],
  ["a lone surrogate escape", webhook({ rawBody: goodBody.replace("a@example.com", "\\ud800") }), 400, "malformed_json"],
  ["a byte order mark", webhook({ rawBody: `\ufeff${goodBody}` }), 400, "malformed_json"],
  ["a JSON array", webhook({ rawBody: "[]" }), 422, "unprocessable_event"],
  ["JSON null", webhook({ rawBody: "null" }), 422, "unprocessable_event"],
  ["an extra top-level key", webhook({ rawBody: withEnvelope({ extra: true }) }), 422, "unprocessable_event"],
  ["unknown event type", webhook({ rawBody: withEnvelope({ type: "contact.exploded" }) }), 422, "unprocessable_event"],
  ["event type of 10,000 characters", webhook({ rawBody: withEnvelope({ type: "x".repeat(10_000) }) }), 422, "unprocessable_event"],
  ["timestamp that is not RFC 3339", webhook({ rawBody: withEnvelope({ timestamp: "yesterday" }) }), 422, "unprocessable_event"],
  ["missing data.id", webhook({ rawBody: withData("contact.created", {}) }), 422, "unprocessable_event"],
  ["id with path characters", webhook({ rawBody: withData("contact.created", { id: "a/../b" }) }), 422, "unprocessable_event"],
  ["contact id of 129 characters", webhook({ rawBody: withData("contact.created", { id: "c".repeat(129) }) }), 422, "unprocessable_event"],
  ["note id with a colon", webhook({ rawBody: withData("note.created", { id: "n:1", contact_id: "sm_1", body: "x" }) }), 422, "unprocessable_event"],
  ["contact_id with an encoded slash", webhook({ rawBody: withData("tag.added", { contact_id: "sm%2F1", tag: "vip" }) }), 422, "unprocessable_event"],
  ["tag of 101 characters", webhook({ rawBody: withData("tag.added", { contact_id: "sm_1", tag: "t".repeat(101) }) }), 422, "unprocessable_event"],
  ["impossible updated_at", webhook({ rawBody: withData("contact.updated", { id: "sm_1", updated_at: "2026-13-45T25:61:00Z" }) }), 422, "unprocessable_event"],
  ["oversized body", webhook({ rawBody: withEnvelope({ pad: "x".repeat(300 * 1024) }) }), 413, "body_too_large"],
  ["20 MiB streamed without a length", chunkedWebhook(20), 413, "body_too_large"],
  // Content types and methods
  ["wrong content type", webhook({ headers: { "content-type": "text/plain" } }), 415, "unsupported_media_type"],
  ["missing content type", webhook({ headers: { "content-type": undefined } }), 415, "unsupported_media_type"],
  ["a form content type", webhook({ headers: { "content-type": "application/x-www-form-urlencoded" } }), 415, "unsupported_media_type"],
  ["a charset other than UTF-8", webhook({ headers: { "content-type": "application/json; charset=latin1" } }), 415, "unsupported_media_type"],
  ["a content type of 32 KiB", webhook({ headers: { "content-type": `application/json; ${"x".repeat(32 * 1024)}` } }), 415, "unsupported_media_type"],
  ["GET on the webhook route", webhook({ method: "GET", rawBody: null, signature: "v1,x" }), 405, "method_not_allowed"],
  ["PUT on the webhook route", webhook({ method: "PUT" }), 405, "method_not_allowed"],
  ["DELETE on the webhook route", webhook({ method: "DELETE", rawBody: null }), 405, "method_not_allowed"],
];

const ADMIN_ROWS = [
  ["operator API without a key", call("/admin/status"), 401, "missing_api_key"],
  ["operator API with a wrong key", call("/admin/status", { key: "wrong-key-0123456789abcdef" }), 401, "invalid_api_key"],
  ["operator API with a read key", call("/admin/events", { key: READ_KEYS[0] }), 401, "invalid_api_key"],
  ["operator API with the key as Basic", call("/admin/status", { authorization: `Basic ${ADMIN_KEY}` }), 401, "missing_api_key"],
  ["operator API with a key of 20,000 characters", call("/admin/status", { key: "k".repeat(20_000) }), 401, "invalid_api_key"],
  ["replay without a key", call(`/admin/events/${SEEDED_ID}/replay`, { method: "POST" }), 401, "missing_api_key", { seeded: true }],
  ["discard with a read key", call(`/admin/events/${SEEDED_ID}`, { method: "DELETE", key: READ_KEYS[1] }), 401, "invalid_api_key", { seeded: true }],
  ["dry run without a key", call("/admin/dry-run", { method: "POST", body: goodBody }), 401, "missing_api_key"],
  ["an event id with path characters", asAdmin("/admin/events/..%2F..%2Fwebhook"), 400, "invalid_path"],
  ["an encoded climb from the operator API to an internal route", asAdmin("/admin/events%2F..%2F..%2Finternal%2Ftoken", { method: "POST", body: "{}" }), 400, "invalid_path"],
  ["a backslash in an operator path", asAdmin("/admin/events/a%5C..%5Cstatus"), 400, "invalid_path"],
  ["an empty segment in an operator path", asAdmin("/admin//status"), 400, "invalid_path"],
  ["a Location's internal route from outside", asAdmin("/internal/accept", { method: "POST", body: "{}" }), 404, "not_found"],
  ["the Directory's internal route from outside", asAdmin("/internal/connections/loc-a/verify"), 404, "not_found", { connections: true }],
  ["an internal route's old name from outside", asAdmin("/token", { method: "POST", body: "{}" }), 404, "not_found"],
  ["the key as an event id", call(`/admin/events/${ADMIN_KEY}`), 400, "key_in_url"],
  ["the key in a query value's words", call(`/admin/status?note=Bearer%20${encodeURIComponent(ADMIN_KEY)}`), 400, "key_in_url"],
  ["a long unknown event id is not repeated", asAdmin(`/admin/events/${"k".repeat(40)}`), 404, "unknown_webhook"],
  ["minting an install link without a key", call("/admin/installs", { method: "POST" }), 401, "missing_api_key"],
  ["minting an install link with a read key", call("/admin/installs", { method: "POST", key: READ_KEYS[0] }), 401, "invalid_api_key"],
  ["minting an install link where the install flow is off", asAdmin("/admin/installs", { method: "POST" }), 404, "oauth_disabled"],
  ["a connection's signing secret of no bytes", asAdmin("/admin/connections", { method: "POST", body: weakConnection("whsec_") }), 400, "invalid_body", { names: "signing_secret" }],
  ["a connection's signing secret of one byte", asAdmin("/admin/connections", { method: "POST", body: weakConnection("whsec_AA==") }), 400, "invalid_body", { names: "signing_secret" }],
  ["rotating to a signing secret of 23 bytes", asAdmin("/admin/connections/loc-a/secrets", { method: "POST", body: JSON.stringify({ signing_secret: `whsec_${Buffer.alloc(23, 7).toString("base64")}` }) }), 400, "invalid_body", { connections: true, names: "signing_secret" }],
  ["replaying an unknown event", asAdmin("/admin/events/msg_none/replay", { method: "POST" }), 404, "unknown_webhook"],
  ["discarding an unknown event", asAdmin("/admin/events/msg_none", { method: "DELETE" }), 404, "unknown_webhook"],
  ["replaying a finished event", asAdmin(`/admin/events/${SEEDED_ID}/replay`, { method: "POST" }), 409, "not_parked", { seeded: true }],
  ["discarding a finished event", asAdmin(`/admin/events/${SEEDED_ID}`, { method: "DELETE" }), 409, "already_finished", { seeded: true }],
  ["a replay request that is not JSON", asAdmin("/admin/replay", { method: "POST", body: "{nope" }), 400, "bad_replay_request"],
  ["a replay window backwards", asAdmin("/admin/replay", { method: "POST", body: JSON.stringify({ from: "2026-02-01T00:00:00Z", to: "2026-01-01T00:00:00Z" }) }), 400, "bad_replay_request"],
  ["an unknown listing state", asAdmin("/admin/events?state=finished"), 400, "bad_query"],
  ["a dry run of malformed JSON", asAdmin("/admin/dry-run", { method: "POST", body: "{nope" }), 422, "unprocessable_event"],
  ["a dry run nested 10,000 deep", asAdmin("/admin/dry-run", { method: "POST", body: "[".repeat(10_000) }), 422, "unprocessable_event"],
  ["an unknown operator route", asAdmin("/admin/secrets"), 404, "not_found"],
  // The console's routes (rows marked `live` run with a live mapping saved, which must stay as it was)
  ["the metrics without a key", call("/admin/metrics"), 401, "missing_api_key"],
  ["saving a mapping without a key", call("/admin/mapping", { method: "PUT", body: MAPPING }), 401, "missing_api_key", { live: true }],
  ["saving a mapping with a wrong key", call("/admin/mapping", { method: "PUT", key: "wrong-key-0123456789abcdef", body: MAPPING }), 401, "invalid_api_key", { live: true }],
  ["saving a mapping with a read key", call("/admin/mapping", { method: "PUT", key: READ_KEYS[0], body: MAPPING }), 401, "invalid_api_key", { live: true }],
  ["removing the live mapping with a read key", call("/admin/mapping", { method: "DELETE", key: READ_KEYS[1] }), 401, "invalid_api_key", { live: true }],
  ["the key in the query string", call(`/admin/status?key=${ADMIN_KEY}`), 400, "key_in_url"],
  ["the key in the query string beside the header", asAdmin(`/admin/mapping?access_token=${ADMIN_KEY}`, { method: "PUT", body: MAPPING }), 400, "key_in_url", { live: true }],
  ["the key as any query value", asAdmin(`/admin/events?state=parked&x=${encodeURIComponent(ADMIN_KEY)}`), 400, "key_in_url"],
  ["an oversized mapping", asAdmin("/admin/mapping", { method: "PUT", body: JSON.stringify({ fields: [], pad: "x".repeat(17 * 1024) }) }), 413, "mapping_too_large", { live: true }],
  ["a mapping that is not JSON", asAdmin("/admin/mapping", { method: "PUT", body: "{nope" }), 422, "invalid_mapping", { live: true }],
  ["a mapping that names an unknown target", asAdmin("/admin/mapping", { method: "PUT", body: mappingTo("password") }), 422, "invalid_mapping", { live: true }],
  ["a mapping with an unknown transform", asAdmin("/admin/mapping", { method: "PUT", body: JSON.stringify({ fields: [{ from: "email", to: "email", transforms: ["eval"] }] }) }), 422, "invalid_mapping", { live: true }],
  ["a mapping whose custom field id has path characters", asAdmin("/admin/mapping", { method: "PUT", body: mappingTo("customField:../x") }), 422, "invalid_mapping", { live: true }],
  ["validating an unknown target", asAdmin("/admin/mapping/validate", { method: "POST", body: mappingTo("password") }), 422, "invalid_mapping"],
  ["a dry run with an invalid draft mapping", asAdmin("/admin/mapping/dry-run", { method: "POST", body: JSON.stringify({ mapping: { fields: [{ to: "email" }] }, event: good }) }), 422, "invalid_mapping"],
  ["a dry run request that is not an object", asAdmin("/admin/mapping/dry-run", { method: "POST", body: "[]" }), 400, "bad_dry_run_request"],
  ["an unknown mapping route", asAdmin("/admin/mapping/deploy", { method: "POST" }), 404, "not_found"],
  // The mapping's custom fields by key and its actions (issue 24)
  ["listing custom fields without a key", call("/admin/mapping/custom-fields"), 401, "missing_api_key"],
  ["listing workflows with a read key", call("/admin/mapping/workflows", { key: READ_KEYS[0] }), 401, "invalid_api_key"],
  ["refreshing custom fields with the key in the URL", asAdmin(`/admin/mapping/custom-fields?refresh=true&key=${ADMIN_KEY}`), 400, "key_in_url"],
  ["a mapping whose custom field key has path characters", asAdmin("/admin/mapping", { method: "PUT", body: mappingTo("customField:contact.a/../b") }), 422, "invalid_mapping", { live: true }],
  ["a mapping whose workflow id has path characters", asAdmin("/admin/mapping", { method: "PUT", body: JSON.stringify({ fields: [], actions: [{ when: "tag_added", value: "vip", do: "add_to_workflow", id: "../x" }] }) }), 422, "invalid_mapping", { live: true }],
  ["a mapping with an action the API has no call for", asAdmin("/admin/mapping", { method: "PUT", body: JSON.stringify({ fields: [], actions: [{ when: "tag_added", value: "vip", do: "delete_contact", id: "x" }] }) }), 422, "invalid_mapping", { live: true }],
  ["a listing filtered by an unknown event type", asAdmin("/admin/events?state=parked&type=contact.exploded"), 400, "bad_query"],
  ["a listing window that is not a time", asAdmin("/admin/events?state=parked&from=yesterday"), 400, "bad_query"],
  ["a listing filtered by a SightMill id with path characters", asAdmin("/admin/events?sightmill_id=..%2Fx"), 400, "bad_query"],
  ["replaying an empty selection", asAdmin("/admin/replay", { method: "POST", body: JSON.stringify({ ids: [] }) }), 400, "bad_replay_request"],
  ["replaying a selection of 101", asAdmin("/admin/replay", { method: "POST", body: JSON.stringify({ ids: Array.from({ length: 101 }, (_, i) => `msg_${i}`) }) }), 400, "bad_replay_request"],
];

const READ_ROWS = [
  ["read without a key", call("/contacts/abc"), 401, "missing_api_key"],
  ["read with the admin key", call("/contacts/abc", { key: ADMIN_KEY }), 401, "invalid_api_key"],
  ["read with the key as Basic", call("/sightmill/contacts/sm_1", { authorization: `Basic ${READ_KEYS[0]}` }), 401, "missing_api_key"],
  ["read with a key and trailing junk", call("/contacts/abc", { authorization: `Bearer ${READ_KEYS[0]} junk` }), 401, "invalid_api_key"],
  ["a contact id of 65 characters", asReader(`/contacts/${"a".repeat(65)}`), 400, "invalid_id"],
  ["a SightMill id of 129 characters", asReader(`/sightmill/contacts/${"a".repeat(129)}`), 400, "invalid_id"],
  ["a NUL in an id", asReader("/contacts/%00"), 400, "invalid_id"],
  ["a traversal in a note id", asReader("/contacts/abc/notes/..%2F..%2Fadmin"), 400, "invalid_path"],
  ["a traversal in a SightMill id", asReader("/sightmill/contacts/..%2F..%2Fadmin%2Fstatus"), 400, "invalid_path"],
  ["a non-ASCII id", asReader("/contacts/%C3%A9"), 400, "invalid_id"],
  ["a business id with a dot", asReader("/contacts/business/a.b"), 400, "invalid_id"],
  ["an unmapped SightMill id", asReader("/sightmill/contacts/sm_unknown/notes"), 404, "not_mapped"],
  ["an empty path segment", asReader("/contacts//notes"), 400, "invalid_path"],
  ["a read key as a contact id", call(`/contacts/${READ_KEYS[0]}`), 400, "key_in_url"],
  ["a read key's budget spent (one read per 10 s here)", asReader("/contacts/abc"), 429, "read_budget_spent", { budgetSpent: true, retryAfter: true }],
  ["a write through the read API", asReader("/contacts/abc/notes", { method: "POST", body: "{}" }), 405, "method_not_allowed"],
  ["a PATCH through the SightMill routes", asReader("/sightmill/contacts/sm_1", { method: "PATCH", body: "{}" }), 405, "method_not_allowed"],
  ["a list query for another location", asReader("/contacts/?locationId=someone-else"), 400, "invalid_query"],
  ["a scoped read key on a connection it does not name", call("/connections/loc-b/contacts/abc", { key: SCOPED_KEY }), 403, "connection_not_allowed", { connections: true }],
  ["a scoped read key on the default connection", call("/contacts/abc", { key: SCOPED_KEY }), 403, "connection_not_allowed"],
  ["a read on an unknown connection", asReader("/connections/loc-nobody/contacts/abc"), 404, "unknown_connection", { connections: true }],
  ["a read on a connection id with path characters", asReader("/connections/..%2Fadmin/contacts/abc"), 400, "invalid_path"],
  ["a list query with an unknown parameter", asReader("/contacts/business/biz1?locationId=loc-e2e&sort=asc"), 400, "invalid_query"],
];

const OTHER_ROWS = [
  ["the root", call("/"), 404, "not_found"],
  ["an unknown path", call("/nope"), 404, "not_found"],
  ["the webhook route with a trailing slash (an empty connection id)", (world) => world.fetch(`${WEBHOOK_PATH}/`, signedDelivery(SECRET, good)), 400, "invalid_connection_id"],
  ["the webhook route in capitals", (world) => world.fetch(WEBHOOK_PATH.toUpperCase(), signedDelivery(SECRET, good)), 404, "not_found"],
  ["POST on the health check", call("/healthz", { method: "POST", body: "{}" }), 404, "not_found"],
  ["an unknown route with a key", asAdmin("/internal/kv"), 404, "not_found"],
  ["the console's headers file", call("/_headers"), 404, "not_found"],
  ["a console path that climbs to the operator API", call("/console/..%2Fadmin%2Fstatus"), 400, "invalid_path"],
];

const ROWS = [
  ...WEBHOOK_ROWS.map((row) => ["webhook", ...row]),
  ...ADMIN_ROWS.map((row) => ["admin", ...row]),
  ...READ_ROWS.map((row) => ["read", ...row]),
  ...OTHER_ROWS.map((row) => ["unknown", ...row]),
];

/**
 * Everything the worker stores, as an operator sees it: KV's entries (values and metadata), the
 * Durable Object's queue counters and listings, the seeded webhook's record and its contact's links.
 */
const storedState = (world) => world.storedState({ webhooks: [SEEDED_ID], contacts: ["sm_1"] });

/** KV writes (puts, deletes and refused writes) the product made, by any location (production model). */
async function kvWrites(world) {
  const ops = (await world.kvOps()) ?? {};
  return Object.values(ops).reduce((sum, op) => sum + (op.put ?? 0) + (op.delete ?? 0), 0);
}

/** Applies one webhook under SEEDED_ID and waits until its writes are all done. */
async function seed(world) {
  const answer = await world.deliver(good, { id: SEEDED_ID });
  assert.equal(answer.status, 202, answer.text);
  const deadline = Date.now() + 5000;
  for (;;) {
    const record = await world.record(SEEDED_ID);
    const { pending } = await world.status();
    const keyed = (await world.kvKeys()).includes(`webhook:${SEEDED_ID}`);
    if (record?.state === "finished" && pending === 0 && keyed) return;
    assert.ok(Date.now() < deadline, `the seeded webhook did not finish: ${JSON.stringify(record)}`);
    await sleep(10);
  }
}

/** Creates the named connections through the operator API. */
async function createConnections(world) {
  for (const { id, token, secret } of CONNECTIONS) {
    const body = { id, token: { kind: "private_integration", token }, signing_secret: secret };
    const created = await world.admin("POST", "connections", { body });
    assert.equal(created.status, 201, JSON.stringify(created.json));
  }
}

describe("hostile requests", () => {
  let world;
  before(async () => {
    world = await startWorld(WORLD);
  });
  after(() => world.close());

  test("the table covers every route with at least 30 rows", () => {
    assert.ok(ROWS.length >= 30, `${ROWS.length} rows`);
    for (const route of ["webhook", "admin", "read", "unknown"]) {
      assert.ok(ROWS.some(([r]) => r === route), route);
    }
  });

  for (const [route, name, request, status, code, options = {}] of ROWS) {
    test(`${route}: ${name}: ${status} ${code}, nothing sent or written`, async () => {
      await world.reset();
      if (options.seeded) await seed(world);
      if (options.connections) await createConnections(world);
      if (options.budgetSpent) {
        const first = await asReader("/contacts/abc")(world);
        assert.notEqual(first.status, 429, await first.text());
      }
      if (options.live) {
        const saved = await world.admin("PUT", "mapping", { body: { fields: [{ from: "name", to: "name" }] } });
        assert.equal(saved.status, 200, JSON.stringify(saved.json));
      }
      const stateBefore = await storedState(world);
      const writesBefore = await kvWrites(world);
      const callsBefore = apiCalls(world.sim);

      const paths = [];
      const recording = Object.assign(Object.create(world), {
        fetch: (path, init) => {
          paths.push(path);
          return world.fetch(path, init);
        },
      });
      const response = await request(recording);
      const text = await response.text();
      assert.equal(response.status, status, text);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      const json = JSON.parse(text);
      if (options.replayed) {
        assert.equal(json.status, code, text);
        assert.equal(response.headers.get("x-sightmill-sync-replayed"), "true");
      } else {
        assert.equal(json.error, code, text);
        assert.equal(typeof json.message, "string", text);
        assert.ok(json.message.length <= 300, `the message stays short: ${json.message.length}`);
      }
      if (options.names) assert.match(json.message, new RegExp(options.names), "the message names the setting");
      if (options.retryAfter) assert.match(response.headers.get("retry-after") ?? "", /^[1-9][0-9]*$/);
      for (const segment of paths.flatMap((path) => path.split("?")[0].split("/"))) {
        const decoded = decodeOr(segment);
        if (decoded.length >= 24) assert.ok(!text.includes(decoded), "no answer repeats a path segment that could be a key");
      }

      await sleep(20); // anything the request started after answering would have begun by now
      assert.equal(apiCalls(world.sim), callsBefore, "nothing was sent to the Contacts API");
      assert.deepEqual(await storedState(world), stateBefore, "nothing was written to KV or the Durable Object");
      assert.equal(await kvWrites(world), writesBefore, "no KV write was even tried");
    });
  }
});

describe("made-up connection ids", () => {
  let world;
  before(async () => {
    world = await startWorld(WORLD);
    await createConnections(world);
  });
  after(() => world.close());

  /** Fetches the Directory has served (the production KV model's wrapper counts them). */
  async function directoryRequests() {
    const response = await world.fetch("/__kvmodel/directory");
    return (await response.json()).requests;
  }

  test("1,000 unsigned requests to made-up ids cost the Directory nothing, and answer as a wrong signature does", async (t) => {
    if (world.kvFlavour !== "production") return t.skip("the Directory's requests are counted by the production KV model's wrapper");
    const wrong = await toConnection("loc-a", newSecret())(world);
    const wrongBody = await wrong.json();
    assert.equal(wrong.status, 401);
    const unsignedKnown = await (await unsignedTo("loc-a")(world)).json();
    const counted = await directoryRequests();
    assert.equal((await world.admin("GET", "connections")).status, 200);
    const before = await directoryRequests();
    assert.ok(before > counted, "the count sees the Directory's requests (listing the connections is one)");
    const writesBefore = await kvWrites(world);
    const started = Date.now();
    for (let n = 0; n < 1000; n += 1) {
      const response = await unsignedTo(`made-up-${n}`)(world);
      const body = await response.json();
      assert.equal(response.status, 401);
      assert.deepEqual(body, unsignedKnown, `made-up-${n} reads exactly as a connected id`);
    }
    const signedToMadeUp = await (await toConnection("made-up-signed", newSecret())(world)).json();
    assert.deepEqual(signedToMadeUp, wrongBody, "a signed delivery to a made-up id reads exactly as a wrong secret");
    const after = await directoryRequests();
    t.diagnostic(`1,000 made-up ids in ${Date.now() - started} ms; Directory requests: ${after - before}`);
    assert.equal(after - before, 0, "no Directory request");
    assert.equal(await kvWrites(world), writesBefore, "nothing written");
    assert.equal(apiCalls(world.sim), 0);
  });
});

describe("the Location's read call, handed a path the read API did not build", () => {
  let world;
  before(async () => {
    world = await startWorld(WORLD);
  });
  after(() => world.close());

  // Straight to the Durable Object (only the Worker can reach it): the one place that holds the
  // location's token refuses to send it anywhere the read API's own parser would not route.
  for (const path of ["@evil.example/contacts/abc", "//evil.example/contacts/abc", "/contacts/abc/../../x", "/users/abc", "/contacts/?locationId=someone-else"]) {
    test(`${path}: refused, nothing sent`, async () => {
      const namespace = await world.mf.getDurableObjectNamespace("LOCATIONS");
      const location = namespace.get(namespace.idFromName(LOCATION));
      const response = await location.fetch("http://location.test/internal/read/send", {
        method: "POST",
        body: JSON.stringify({ path, key: "key:00000000" }),
      });
      const json = await response.json();
      assert.ok([400, 404].includes(response.status), `${response.status} ${JSON.stringify(json)}`);
      assert.equal(typeof json.error, "string");
      assert.equal(apiCalls(world.sim), 0, "nothing was sent to the Contacts API");
    });
  }

  test("the control: a path the read API builds is sent", async () => {
    const namespace = await world.mf.getDurableObjectNamespace("LOCATIONS");
    const location = namespace.get(namespace.idFromName(LOCATION));
    const response = await location.fetch("http://location.test/internal/read/send", {
      method: "POST",
      body: JSON.stringify({ path: "/contacts/abc", key: "key:00000000" }),
    });
    const json = await response.json();
    assert.equal(response.status, 200, JSON.stringify(json));
    assert.ok(json.answered, JSON.stringify(json));
    assert.equal(apiCalls(world.sim), 1);
  });
});

describe("installs without the operator", () => {
  const CLIENT_ID = "sightmill-sync-hostile";
  const CLIENT_SECRET = "client-secret-hostile-0123456789";
  let world;
  before(async () => {
    world = await startWorld({
      duplicates: WORLD.duplicates,
      vars: { ...WORLD.vars, TOKEN_MODE: "oauth", CONTACTS_API_TOKEN: undefined, OAUTH_CLIENT_ID: CLIENT_ID, OAUTH_CLIENT_SECRET: CLIENT_SECRET },
      simulator: { tokens: {}, oauth: { clients: { [CLIENT_ID]: { secret: CLIENT_SECRET, locationId: "loc-stranger", companyId: "co-stranger" } } } },
    });
  });
  after(() => world.close());

  const rows = [
    ["an install with no link", "/oauth/install", 403, "install_link_required"],
    ["an agency install with no link", "/oauth/install?agency=1", 403, "install_link_required"],
    ["an install with a made-up link", "/oauth/install?invite=9999999999.AAAAAAAAAAAAAAAAAAAAAA.agency.AAAA", 401, "invalid_install_link"],
    ["an install with a garbled link", "/oauth/install?invite=%00", 401, "invalid_install_link"],
  ];
  for (const [name, path, status, code] of rows) {
    test(`${name}: ${status} ${code}, nothing connected, written or sent`, async () => {
      await world.reset();
      const response = await world.fetch(path, { redirect: "manual" });
      const json = await response.json();
      assert.deepEqual([response.status, json.error], [status, code], JSON.stringify(json));
      assert.equal(typeof json.message, "string");
      assert.equal(response.headers.get("set-cookie"), null, "no install state was handed out");
      assert.deepEqual((await world.admin("GET", "connections")).json.connections.map((c) => c.id), [LOCATION]);
      assert.deepEqual(await world.kvKeys(), []);
      assert.deepEqual(world.sim.oauth.grants(), [], "no code was traded");
    });
  }

  /** Runs the install flow from `path` like a browser: install route -> consent -> callback. */
  async function install(path) {
    const start = await world.fetch(path, { redirect: "manual" });
    assert.equal(start.status, 302, await start.clone().text());
    const cookie = start.headers.get("set-cookie").split(";")[0];
    const consent = await fetch(start.headers.get("location"), { redirect: "manual" });
    const callback = new URL(consent.headers.get("location"));
    const answer = await world.fetch(`${callback.pathname}${callback.search}`, { headers: { cookie } });
    return { status: answer.status, json: await answer.json() };
  }
  const connected = async () => (await world.admin("GET", "connections")).json.connections.map((c) => c.id);

  test("an install link used a second time: 409 install_link_used, and its consent connects nothing", async () => {
    await world.reset();
    const minted = await world.admin("POST", "installs", { body: { kind: "location" } });
    assert.equal(minted.status, 201, JSON.stringify(minted.json));
    const link = new URL(minted.json.install_url);
    assert.equal((await install(`${link.pathname}${link.search}`)).status, 200);
    const keysAfterFirst = await world.kvKeys();
    world.sim.oauth.setConsentLocation("loc-second");
    const second = await install(`${link.pathname}${link.search}`);
    assert.deepEqual([second.status, second.json.error], [409, "install_link_used"], JSON.stringify(second.json));
    assert.equal(typeof second.json.message, "string");
    assert.deepEqual(await connected(), [LOCATION, "loc-stranger"]);
    assert.deepEqual(await world.kvKeys(), keysAfterFirst, "nothing written for the second consent");
    world.sim.oauth.setConsentLocation(null);
  });

  test("an install the allow-list does not name: 403 install_not_allowed, nothing connected or written", async () => {
    await world.reconfigure({ OAUTH_INSTALL_ALLOW: "loc-friend co-friend" });
    try {
      await world.reset();
      const answer = await install("/oauth/install");
      assert.deepEqual([answer.status, answer.json.error], [403, "install_not_allowed"], JSON.stringify(answer.json));
      assert.match(answer.json.message, /OAUTH_INSTALL_ALLOW/);
      assert.deepEqual(await connected(), [LOCATION]);
      assert.deepEqual(await world.kvKeys(), []);
    } finally {
      await world.reconfigure({ OAUTH_INSTALL_ALLOW: undefined });
    }
  });
});

describe("misconfiguration", () => {
  for (const [name, secret] of [["empty", "whsec_"], ["one byte", "whsec_AA=="]]) {
    test(`a WEBHOOK_SECRETS entry of ${name} answers 500 naming the setting`, async () => {
      const world = await startWorld({ duplicates: "refuse", vars: { WEBHOOK_SECRETS: `${SECRET} ${secret}` } });
      try {
        const answer = await world.deliver(good);
        assert.equal(answer.status, 500, answer.text);
        assert.equal(answer.json.error, "misconfigured");
        assert.match(answer.json.message, /WEBHOOK_SECRETS.*number 2 is shorter than 24 bytes/);
        assert.ok(!answer.text.includes(SECRET.slice(6)), "never a secret value");
        assert.equal(apiCalls(world.sim), 0);
      } finally {
        await world.close();
      }
    });
  }

  test("a missing setting answers 500 naming it, and never a secret value", async () => {
    const world = await startWorld({ duplicates: "refuse", vars: { GHL_LOCATION_ID: undefined } });
    try {
      const answer = await world.deliver(good);
      assert.equal(answer.status, 500);
      assert.equal(answer.json.error, "misconfigured");
      assert.match(answer.json.message, /GHL_LOCATION_ID/);
      assert.ok(!answer.text.includes(SECRET.slice(6)), "never a secret value");
      assert.equal(apiCalls(world.sim), 0);
      await world.assertNothingStored();
    } finally {
      await world.close();
    }
  });

  const operatorCases = [
    ["no ADMIN_API_KEYS turns the operator API off", { ADMIN_API_KEYS: undefined }, 404, "admin_api_disabled"],
    ["a blank ADMIN_API_KEYS turns it off too", { ADMIN_API_KEYS: " " }, 404, "admin_api_disabled"],
    ["an operator key shorter than 24 characters", { ADMIN_API_KEYS: "operator-key-of-20ch" }, 500, "misconfigured"],
  ];
  for (const [name, vars, status, code] of operatorCases) {
    test(`${name}: ${status} ${code}, naming the setting and never a key`, async () => {
      const world = await startWorld({ duplicates: "refuse", vars });
      try {
        for (const key of [undefined, ADMIN_KEY, "operator-key-of-20ch"]) {
          const response = await call("/admin/status", { key })(world);
          const text = await response.text();
          assert.equal(response.status, status, text);
          const json = JSON.parse(text);
          assert.equal(json.error, code);
          assert.match(json.message, /ADMIN_API_KEYS/);
          assert.ok(!text.includes("operator-key-of-20ch") && !text.includes(ADMIN_KEY), "never a key");
        }
        await world.assertNothingStored();
      } finally {
        await world.close();
      }
    });
  }

  test("no KV namespace bound: every route that needs it answers 500 JSON, and the log says why", async () => {
    const world = await startWorld({ duplicates: "refuse", bindKv: false });
    try {
      const requests = [
        webhook(),
        asAdmin("/admin/status"),
        asAdmin("/admin/dry-run", { method: "POST", body: goodBody }),
        asReader("/contacts/abc"),
      ];
      for (const request of requests) {
        const response = await request(world);
        const text = await response.text();
        assert.equal(response.status, 500, text);
        assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
        assert.equal(JSON.parse(text).error, "internal_error", text);
      }
      assert.match(world.logs(), /no KV namespace is bound as `SYNC_KV`/);
      assert.equal(apiCalls(world.sim), 0);
    } finally {
      await world.close();
    }
  });

  test("a missing token is accepted and waits in the queue, naming the setting", async () => {
    const world = await startWorld({ duplicates: "refuse", vars: { CONTACTS_API_TOKEN: undefined } });
    try {
      const { answer, record } = await world.deliverAndSettle(good, { id: "msg_no_token" });
      assert.equal(answer.status, 202, answer.text);
      assert.equal(record.state, "pending");
      assert.match(record.last_error, /CONTACTS_API_TOKEN/);
      assert.equal(apiCalls(world.sim), 0);
      assert.match(world.logs(), /"kind":"token_renewal"/, "the operator is told");
    } finally {
      await world.close();
    }
  });
});
