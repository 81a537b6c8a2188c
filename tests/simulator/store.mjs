// The simulator's state: one Map per collection (contacts; notes and tasks carrying their
// contactId; appointments seeded by tests; custom field definitions, workflows and campaigns,
// each carrying its locationId; enrollments of contacts in workflows and campaigns; the custom
// field values contact writes dropped). `snapshot()` returns a deep copy as plain arrays for
// tests to inspect.

const COLLECTIONS = [
  "contacts",
  "notes",
  "tasks",
  "appointments",
  "customFields",
  "droppedCustomFields",
  "workflows",
  "campaigns",
  "enrollments",
];

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
