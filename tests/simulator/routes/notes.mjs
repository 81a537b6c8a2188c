// Contacts API v2 notes of a contact: create, list, get, update and delete. Notes are kept in
// the store's `notes` collection with the `contactId` they belong to.

import { apiError, ok } from "../http.mjs";
import { boolean, string, unprocessable } from "../validate.mjs";
import { newId, setOrDelete, withContact } from "./contacts.mjs";

/** The properties of the spec's NotesDTO / UpdateNoteDTO. */
const NOTE_FIELDS = { userId: string, body: string, title: string, color: string, pinned: boolean };
const CREATE_NOTE = { fields: NOTE_FIELDS, required: ["body"] };
const UPDATE_NOTE = { fields: NOTE_FIELDS };

const NOTE_NOT_FOUND = () => apiError(400, "Note not found");

function applyNoteFields(note, body) {
  for (const [key, value] of Object.entries(body)) setOrDelete(note, key, value);
}

/** Runs `handler(note)` for the note `:id` of `contact`, or answers "Note not found". */
function withNote(ctx, contact, handler) {
  const note = ctx.store.notes.get(ctx.params.id);
  return note && note.contactId === contact.id ? handler(note) : NOTE_NOT_FOUND();
}

const reply = (status, note) => ok(status, { note: structuredClone(note) });

function createNote(ctx) {
  return (
    unprocessable(ctx.body, CREATE_NOTE) ??
    withContact(ctx, (contact) => {
      const note = { id: newId(ctx, ctx.store.notes) };
      applyNoteFields(note, ctx.body);
      note.contactId = contact.id;
      note.dateAdded = new Date(ctx.now()).toISOString();
      ctx.store.notes.set(note.id, note);
      return reply(201, note);
    })
  );
}

function listNotes(ctx) {
  return withContact(ctx, (contact) => {
    const notes = [...ctx.store.notes.values()].filter((n) => n.contactId === contact.id);
    return ok(200, { notes: structuredClone(notes) });
  });
}

function getNote(ctx) {
  return withContact(ctx, (contact) => withNote(ctx, contact, (note) => reply(200, note)));
}

function updateNote(ctx) {
  return (
    unprocessable(ctx.body, UPDATE_NOTE) ??
    withContact(ctx, (contact) =>
      withNote(ctx, contact, (note) => {
        applyNoteFields(note, ctx.body);
        return reply(200, note);
      }),
    )
  );
}

function deleteNote(ctx) {
  return withContact(ctx, (contact) =>
    withNote(ctx, contact, (note) => {
      ctx.store.notes.delete(note.id);
      return ok(200, { succeded: true }); // sic: the API's spelling
    }),
  );
}

export const noteRoutes = [
  { method: "POST", path: "/contacts/:contactId/notes", handler: createNote },
  { method: "GET", path: "/contacts/:contactId/notes", handler: listNotes },
  { method: "GET", path: "/contacts/:contactId/notes/:id", handler: getNote },
  { method: "PUT", path: "/contacts/:contactId/notes/:id", handler: updateNote },
  { method: "DELETE", path: "/contacts/:contactId/notes/:id", handler: deleteNote },
];
