// The console's one way to the operator API. Every call goes through api(), which builds the
// path from one base (`/admin` for the default connection, `/admin/connections/{id}` for a named
// one: the connection selector changes only the base; a call may name another with `at`) and
// sends the operator key kept for this tab (sessionStorage) as a Bearer header. The key is never
// put in a URL or a cookie, and never logged; nor is any secret a call sends or answers.

const KEY_ITEM = "sightmill-sync.operator-key";
let base = "/admin";
let onRefused = () => {};

export const operatorKey = {
  get: () => sessionStorage.getItem(KEY_ITEM),
  set: (key) => sessionStorage.setItem(KEY_ITEM, key),
  clear: () => sessionStorage.removeItem(KEY_ITEM),
};

/** Where the operator API is (a connection's base, e.g. `/admin/connections/{id}`). */
export function setBase(path) {
  base = path;
}

/** Called with the refusal when the API answers 401 (the key is wrong or revoked). */
export function whenRefused(handler) {
  onRefused = handler;
}

/** The request for `path` under `at` with `query` (empty parameters left out), the key as a header. */
function request(method, path, { query, at }) {
  const params = new URLSearchParams(Object.entries(query ?? {}).filter(([, value]) => value !== "" && value != null));
  const url = `${at}/${path}${params.size ? `?${params}` : ""}`;
  const headers = { authorization: `Bearer ${operatorKey.get() ?? ""}` };
  return { url, headers, init: { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" } };
}

const UNREACHABLE = { status: 0, ok: false, json: { error: "unreachable", message: "the worker could not be reached" } };

/**
 * Calls the operator API: `path` under the base (or under `at`, e.g. `/admin` for the routes of
 * every connection), `query` as parameters (empty ones left out), `body` as JSON (a string is
 * sent as it is; a Blob, such as a chosen File, is sent as it is with `type` as its Content-Type).
 * Answers `{ status, ok, json }`.
 */
export async function api(method, path, { query, body, type, at = base } = {}) {
  const { url, headers, init } = request(method, path, { query, at });
  if (body instanceof Blob) {
    headers["content-type"] = type || body.type || "application/octet-stream";
    init.body = body;
  } else if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    return UNREACHABLE;
  }
  return answered(response, await response.text());
}

/**
 * Reads a file the operator API answers (e.g. an import's failed.csv) with the key as a header:
 * `{ status, ok, blob }` when it answers 2xx, otherwise `{ status, ok: false, json }` (its refusal).
 */
export async function download(path, { query, at = base } = {}) {
  const { url, init } = request("GET", path, { query, at });
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    return UNREACHABLE;
  }
  if (response.ok) return { status: response.status, ok: true, blob: await response.blob() };
  return answered(response, await response.text());
}

function answered(response, text) {
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { error: "not_json", message: `the worker answered ${response.status} without JSON` };
  }
  if (response.status === 401) onRefused(json);
  return { status: response.status, ok: response.ok, json };
}

/** A refusal's words for a person: `message (error, status)`. */
export function describe({ status, json }) {
  return `${json?.message ?? "no answer"} (${json?.error ?? "error"}, ${status})`;
}
