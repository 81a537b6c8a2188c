// Table-driven routing: compiles `{ method, path: "/contacts/:contactId", ... }` entries and
// matches requests against them the way Express does (trailing slash optional).

/** Splits a path into its non-empty segments. */
function segments(path) {
  return path.split("/").filter((s) => s !== "");
}

function compile(route) {
  const parts = segments(route.path);
  return {
    ...route,
    key: `${route.method} ${route.path}`,
    parts,
    literalCount: parts.filter((p) => !p.startsWith(":")).length,
  };
}

function matchParts(parts, actual) {
  if (parts.length !== actual.length) return null;
  const params = {};
  for (let i = 0; i < parts.length; i += 1) {
    if (parts[i].startsWith(":")) {
      params[parts[i].slice(1)] = decodeURIComponent(actual[i]);
    } else if (parts[i] !== actual[i]) {
      return null;
    }
  }
  return params;
}

/**
 * Builds a router over `routes`. `match(method, pathname)` returns `{ route, params }` for the
 * most specific matching route (most literal segments), or null.
 */
export function createRouter(routes) {
  const compiled = routes.map(compile);
  return {
    keys: compiled.map((r) => r.key),
    match(method, pathname) {
      let actual;
      try {
        actual = segments(pathname);
        let best = null;
        for (const route of compiled) {
          if (route.method !== method) continue;
          const params = matchParts(route.parts, actual);
          if (params && (!best || route.literalCount > best.route.literalCount)) {
            best = { route, params };
          }
        }
        return best;
      } catch {
        return null; // malformed percent-encoding
      }
    },
  };
}
