// The simulator's state: one Map per collection (contacts now; notes, tasks, ... later).
// `snapshot()` returns a deep copy as plain arrays for tests to inspect.

const COLLECTIONS = ["contacts"];

export function createStore() {
  return Object.fromEntries(COLLECTIONS.map((name) => [name, new Map()]));
}

export function snapshot(store) {
  return Object.fromEntries(
    Object.entries(store).map(([name, records]) => [name, structuredClone([...records.values()])]),
  );
}
