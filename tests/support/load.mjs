// Load for the benchmark: sends prepared requests at a fixed concurrency and records each one's
// send time, answer time and status; percentiles of what it measured.

import { performance } from "node:perf_hooks";

/**
 * Sends every `{ url, init }` of `requests`, `concurrency` at a time, in order; a request gets no
 * more than `timeoutMs` (its status is then -1). Returns
 * `{ results: [{ sentAt (epoch ms), ms, status }], elapsedMs }`.
 */
export async function drive(requests, concurrency, timeoutMs = 60_000) {
  const results = new Array(requests.length);
  let next = 0;
  async function lane() {
    while (next < requests.length) {
      const index = next++;
      const { url, init } = requests[index];
      const sentAt = Date.now();
      const started = performance.now();
      let status = 0;
      try {
        const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
        await response.arrayBuffer();
        status = response.status;
      } catch {
        status = -1;
      }
      results[index] = { sentAt, ms: performance.now() - started, status };
    }
  }
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, lane));
  return { results, elapsedMs: performance.now() - started };
}

/** The `p`th percentile (0-100) of `values`, nearest rank. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** How many of `results` had each status. */
export function statusCounts(results) {
  const counts = {};
  for (const { status } of results) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}
