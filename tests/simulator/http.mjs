// HTTP helpers shared by the simulator: reading bodies, building results and writing them.
// A "result" is plain data `{ status, body?, headers? }` that handlers return.

import { STATUS_CODES } from "node:http";

export const MAX_BODY_BYTES = 1024 * 1024;

/** Reads the whole request body as a UTF-8 string (rejects past MAX_BODY_BYTES). */
export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error("request entity too large"));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** JSON.parse that returns `null` instead of throwing (for recording bodies). */
export function tryParseJson(text) {
  if (text === "") return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export function isJsonContentType(header) {
  return /^application\/([\w.+-]*\+)?json\b/i.test(header ?? "");
}

export function ok(status, body, headers) {
  return { status, body, headers };
}

/** `{ statusCode, message, ...extra }`: the API's error body shape. */
export function apiError(status, message, extra = {}) {
  return { status, body: { statusCode: status, message, ...extra } };
}

export function notFound(method, pathname) {
  return apiError(404, `Cannot ${method} ${pathname}`, { error: "Not Found" });
}

export function defaultErrorBody(status) {
  return { statusCode: status, message: STATUS_CODES[status] ?? "Error" };
}

/** Writes a result as an application/json response (no body for 204). */
export function send(res, result) {
  if (res.headersSent || res.destroyed) return;
  const headers = { ...(result.headers ?? {}) };
  if (result.status === 204 || result.body === undefined) {
    res.writeHead(result.status, headers);
    res.end();
    return;
  }
  const payload = typeof result.body === "string" ? result.body : JSON.stringify(result.body);
  headers["Content-Type"] = "application/json; charset=utf-8";
  headers["Content-Length"] = Buffer.byteLength(payload);
  res.writeHead(result.status, headers);
  res.end(payload);
}
