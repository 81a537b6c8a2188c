// Fault injection rules: answer some API requests with an error status, after a delay, or not
// at all (hang). Rules are tried in the order they were added; the first that matches a
// request's route template and location (when the rule names them) and wins its `fraction` draw
// is spent on it.

/** Thrown for a fault spec that makes no sense; the control API answers it with 400. */
export class FaultSpecError extends Error {}

function check(condition, message) {
  if (!condition) throw new FaultSpecError(message);
}

function isCount(n) {
  return n === Infinity || (Number.isInteger(n) && n > 0);
}

/**
 * Validates and normalises a fault spec (see README.md). `knownRoutes` is the list of route
 * templates a spec's `route` may name.
 */
export function normaliseFault(spec, knownRoutes) {
  check(typeof spec === "object" && spec !== null && !Array.isArray(spec), "fault spec must be an object");
  const { route = null, location = null, fraction = null, status = null, headers = {}, body, latencyMs = 0 } = spec;
  const hang = spec.hang === true;
  const afterApply = spec.afterApply === true;
  const count = spec.count === null ? Infinity : (spec.count ?? (fraction === null ? 1 : Infinity));

  check(
    route === null || knownRoutes.includes(route),
    `unknown route ${JSON.stringify(route)}; known: ${knownRoutes.join(", ")}`,
  );
  check(location === null || (typeof location === "string" && location !== ""), "location must be a non-empty string");
  check(isCount(count), "count must be a positive integer, Infinity or null");
  check(fraction === null || (typeof fraction === "number" && fraction >= 0 && fraction <= 1), "fraction: 0..1");
  check(status === null || (Number.isInteger(status) && status >= 100 && status <= 599), "status: 100..599");
  check(typeof headers === "object" && headers !== null, "headers must be an object");
  check(Number.isFinite(latencyMs) && latencyMs >= 0, "latencyMs must be a number >= 0");
  check(status !== null || hang || latencyMs > 0, "a fault needs status, hang or latencyMs");

  return { route, location, count, fraction, status, headers, body, latencyMs, hang, afterApply };
}

/** A list of fault rules; `random` is the seeded PRNG used for `fraction`. */
export function createFaults(random) {
  let rules = [];

  function applies(rule, routeKey, locationOf) {
    if (rule.route !== null && rule.route !== routeKey) return false;
    if (rule.location !== null && rule.location !== locationOf()) return false;
    return rule.fraction === null || random() < rule.fraction;
  }

  return {
    add(rule) {
      rules.push({ ...rule, remaining: rule.count });
    },
    /**
     * Returns the rule spent on a request to `routeKey`, or null. `locationOf()`: the location the
     * request acts for (or null), asked only when a rule names one.
     */
    take(routeKey, locationOf = () => null) {
      let known;
      const location = () => (known ??= { id: locationOf() ?? null }).id;
      const rule = rules.find((r) => applies(r, routeKey, location));
      if (!rule) return null;
      rule.remaining -= 1;
      if (rule.remaining <= 0) rules = rules.filter((r) => r !== rule);
      return rule;
    },
    list() {
      return rules.map((r) => ({ ...r }));
    },
    clear() {
      rules = [];
    },
  };
}
