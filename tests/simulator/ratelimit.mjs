// Per-location rate limiting like the Contacts API's: a fixed window of `max` requests per
// `intervalMs` (a window opens at the first request after the previous one ended) plus a
// daily allowance. Every decision carries the X-RateLimit-* headers the API sends.

export const DEFAULT_RATE_LIMIT = { max: 100, intervalMs: 10_000, daily: 200_000 };
const DAY_MS = 24 * 60 * 60 * 1000;

function freshCounter(start) {
  return { start, used: 0 };
}

/** Rolls `counter` over to a new window when its period has ended. */
function current(counter, now, periodMs) {
  return !counter || now >= counter.start + periodMs ? freshCounter(now) : counter;
}

function retryAfterSeconds(counter, periodMs, now) {
  return Math.max(1, Math.ceil((counter.start + periodMs - now) / 1000));
}

/** `config`: partial { max, intervalMs, daily }; `clock`: () => ms. */
export function createRateLimiter(config, clock) {
  const limits = { ...DEFAULT_RATE_LIMIT, ...(config ?? {}) };
  let byLocation = new Map();

  function headers(window, day) {
    return {
      "X-RateLimit-Max": String(limits.max),
      "X-RateLimit-Remaining": String(Math.max(0, limits.max - window.used)),
      "X-RateLimit-Interval-Milliseconds": String(limits.intervalMs),
      "X-RateLimit-Limit-Daily": String(limits.daily),
      "X-RateLimit-Daily-Remaining": String(Math.max(0, limits.daily - day.used)),
    };
  }

  /**
   * Spends one request for `locationId`. Returns `{ allowed, headers, retryAfter? }`;
   * a refused request spends nothing.
   */
  function take(locationId) {
    const now = clock();
    const entry = byLocation.get(locationId) ?? {};
    const window = current(entry.window, now, limits.intervalMs);
    const day = current(entry.day, now, DAY_MS);
    byLocation.set(locationId, { window, day });

    if (day.used >= limits.daily) {
      return { allowed: false, headers: headers(window, day), retryAfter: retryAfterSeconds(day, DAY_MS, now) };
    }
    if (window.used >= limits.max) {
      return {
        allowed: false,
        headers: headers(window, day),
        retryAfter: retryAfterSeconds(window, limits.intervalMs, now),
      };
    }
    window.used += 1;
    day.used += 1;
    return { allowed: true, headers: headers(window, day) };
  }

  return {
    limits,
    take,
    reset() {
      byLocation = new Map();
    },
  };
}
