// Contacts API v2 appointments of a contact (GET only: the API books them through calendars).
// Tests seed them with `seedAppointment` (sim.seedAppointment or POST /__control/appointments).

import { ok } from "../http.mjs";
import { isPlainObject } from "../validate.mjs";
import { SeedError } from "../store.mjs";
import { newId, withContact } from "./contacts.mjs";

function listAppointments(ctx) {
  return withContact(ctx, (contact) => {
    const events = [...ctx.store.appointments.values()].filter((e) => e.contactId === contact.id);
    return ok(200, { events: structuredClone(events) });
  });
}

/**
 * Adds an appointment (the spec's GetEventSchema) for `contactId`; `fields` override the defaults
 * (title, status, startTime, ...), never its id, contactId or locationId. `ctx`: `{ store, random,
 * now }`. Returns a copy of the stored event; throws SeedError for an unknown contact.
 */
export function seedAppointment(ctx, contactId, fields = {}) {
  const contact = ctx.store.contacts.get(contactId);
  if (!contact) throw new SeedError(`no contact ${JSON.stringify(contactId)} to book an appointment for`);
  if (!isPlainObject(fields)) throw new SeedError("appointment fields must be an object");
  const stamp = new Date(ctx.now()).toISOString();
  const event = {
    calendarId: "sim-calendar",
    title: "Appointment",
    status: "booked",
    appointmentStatus: "booked",
    startTime: stamp,
    endTime: stamp,
    dateAdded: stamp,
    dateUpdated: stamp,
    ...structuredClone(fields),
    id: newId(ctx, ctx.store.appointments),
    contactId: contact.id,
    locationId: contact.locationId,
  };
  ctx.store.appointments.set(event.id, event);
  return structuredClone(event);
}

export const appointmentRoutes = [
  { method: "GET", path: "/contacts/:contactId/appointments", handler: listAppointments },
];
