// Builds webhooks the way SightMill sends them (Standard Webhooks signing over the raw body).
// Shared by the end-to-end tests, the dev demo and the benchmark.

import { createHmac, randomBytes } from "node:crypto";

/** `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with a `whsec_<base64>` secret. */
export function sign(secret, id, timestamp, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const mac = createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest("base64");
  return `v1,${mac}`;
}

/** A fresh `whsec_` secret. */
export function newSecret() {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

/**
 * The request init for one delivery of `event`. `overrides` can break any part of it: `id`,
 * `timestamp`, `rawBody` (string, Buffer or null), `signature`, `secret`, `method`, `headers`
 * (a header set to undefined is removed).
 */
export function signedDelivery(secret, event, overrides = {}) {
  const id = overrides.id ?? `msg_${randomBytes(9).toString("hex")}`;
  const timestamp = overrides.timestamp ?? Math.floor(Date.now() / 1000);
  const body = "rawBody" in overrides ? overrides.rawBody : JSON.stringify(event);
  const signature = overrides.signature ?? sign(overrides.secret ?? secret, id, timestamp, body ?? "");
  const headers = {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signature,
    ...overrides.headers,
  };
  for (const [name, value] of Object.entries(headers)) if (value === undefined) delete headers[name];
  return { id, method: overrides.method ?? "POST", headers, body };
}

/** A SightMill event of `type` about `data` (updated_at defaults to a fixed instant). */
export function sightmillEvent(type, data) {
  return {
    type,
    timestamp: new Date().toISOString(),
    data: { updated_at: "2026-11-27T10:00:00Z", ...data },
  };
}
