// Contacts API v2 tags of a contact: add (POST) and remove (DELETE, with a JSON body) without
// overwriting the others, unlike PUT /contacts/:contactId with `tags`. Both answer the tags the
// contact has afterwards.

import { ok } from "../http.mjs";
import { stringArray, unprocessable } from "../validate.mjs";
import { touch, withContact } from "./contacts.mjs";

/** The spec's TagsDTO. */
const TAGS = { fields: { tags: stringArray }, required: ["tags"] };

function changeTags(status, change) {
  return (ctx) =>
    unprocessable(ctx.body, TAGS) ??
    withContact(ctx, (contact) => {
      contact.tags = change(contact.tags, ctx.body.tags);
      touch(ctx, contact);
      return ok(status, { tags: [...contact.tags] });
    });
}

const added = (tags, more) => [...new Set([...tags, ...more])];
const removed = (tags, gone) => tags.filter((tag) => !gone.includes(tag));

export const tagRoutes = [
  { method: "POST", path: "/contacts/:contactId/tags", handler: changeTags(201, added) },
  { method: "DELETE", path: "/contacts/:contactId/tags", handler: changeTags(200, removed), body: "json" },
];
