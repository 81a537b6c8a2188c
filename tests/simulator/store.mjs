// The simulator's state: one Map per collection (contacts; notes and tasks carrying their
// contactId; appointments seeded by tests). `snapshot()` returns a deep copy as plain arrays for
// tests to inspect.

const COLLECTIONS = ["contacts", "notes", "tasks", "appointments"];

/** Thrown when a test seeds state that makes no sense; the control API answers it with 400. */
export class SeedError extends Error {}

export function createStore() {
  return Object.fromEntries(COLLECTIONS.map((name) => [name, new Map()]));
}

export function snapshot(store) {
  return Object.fromEntries(
    Object.entries(store).map(([name, records]) => [name, structuredClone([...records.values()])]),
  );
}
