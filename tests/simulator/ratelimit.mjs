// Per-location rate limiting like the Contacts API's: a fixed window of `max` requests per
// `intervalMs` (a window opens at the first request after the previous one ended) plus a
// daily allowance, each location with its own windows and, optionally, its own limits (the
// global ones otherwise). Every decision carries the X-RateLimit-* headers the API sends.

export const DEFAULT_RATE_LIMIT = { max: 100, intervalMs: 10_000, daily: 200_000 };
const DAY_MS = 24 * 60 * 60 * 1000;
const LIMIT_NAMES = Object.keys(DEFAULT_RATE_LIMIT);

/** Thrown for rate limits that make no sense; the control API answers it with 400. */
export class RateLimitError extends Error {}

/** Validates partial limits `{ max?, intervalMs?, daily? }` (positive integers); returns them. */
export function checkRateLimit(limits) {
  if (typeof limits !== "object" || limits === null || Array.isArray(limits)) {
    throw new RateLimitError("expected {max?, intervalMs?, daily?}");
  }
  for (const [name, value] of Object.entries(limits)) {
    if (!LIMIT_NAMES.includes(name)) throw new RateLimitError(`unknown rate limit ${JSON.stringify(name)}`);
    if (!Number.isInteger(value) || value < 1) throw new RateLimitError(`${name} must be a positive integer`);
  }
  return limits;
}

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

function headers(limits, window, day) {
  return {
    "X-RateLimit-Max": String(limits.max),
    "X-RateLimit-Remaining": String(Math.max(0, limits.max - window.used)),
    "X-RateLimit-Interval-Milliseconds": String(limits.intervalMs),
    "X-RateLimit-Limit-Daily": String(limits.daily),
    "X-RateLimit-Daily-Remaining": String(Math.max(0, limits.daily - day.used)),
  };
}

/**
 * `config`: partial global { max, intervalMs, daily }; `clock`: () => ms; `ownLimits`:
 * (locationId) => that location's partial limits or undefined (read on every request, laid over
 * the global ones).
 */
export function createRateLimiter(config, clock, ownLimits = () => undefined) {
  const limits = { ...DEFAULT_RATE_LIMIT, ...(config ?? {}) };
  let byLocation = new Map(); // locationId -> { window, day }

  const limitsFor = (locationId) => ({ ...limits, ...(ownLimits(locationId) ?? {}) });

  /**
   * Spends one request for `locationId`. Returns `{ allowed, headers, retryAfter? }`;
   * a refused request spends nothing.
   */
  function take(locationId) {
    const now = clock();
    const own = limitsFor(locationId);
    const entry = byLocation.get(locationId) ?? {};
    const window = current(entry.window, now, own.intervalMs);
    const day = current(entry.day, now, DAY_MS);
    byLocation.set(locationId, { window, day });

    if (day.used >= own.daily) {
      return { allowed: false, headers: headers(own, window, day), retryAfter: retryAfterSeconds(day, DAY_MS, now) };
    }
    if (window.used >= own.max) {
      return {
        allowed: false,
        headers: headers(own, window, day),
        retryAfter: retryAfterSeconds(window, own.intervalMs, now),
      };
    }
    window.used += 1;
    day.used += 1;
    return { allowed: true, headers: headers(own, window, day) };
  }

  return {
    /** The global limits (those of every location without its own). */
    limits,
    limitsFor,
    take,
    /** Starts one location's windows afresh (its limits changed). */
    forget(locationId) {
      byLocation.delete(locationId);
    },
    reset() {
      byLocation = new Map();
    },
  };
}
