// A contact's followers (apps/contacts.json, FollowersDTO): add (POST) and remove (DELETE, with a
// JSON body) user ids; the contact keeps a set, so either sent twice changes nothing more. Both
// answer the followers afterwards and those the call added or removed.

import { ok } from "../http.mjs";
import { stringArray, unprocessable } from "../validate.mjs";
import { touch, withContact } from "./contacts.mjs";

const FOLLOWERS = { fields: { followers: stringArray }, required: ["followers"] };

function changeFollowers(adding) {
  return (ctx) =>
    unprocessable(ctx.body, FOLLOWERS) ??
    withContact(ctx, (contact) => {
      const before = contact.followers ?? [];
      const given = [...new Set(ctx.body.followers)];
      const changed = given.filter((id) => before.includes(id) !== adding);
      contact.followers = adding ? [...before, ...changed] : before.filter((id) => !given.includes(id));
      touch(ctx, contact);
      const answer = { followers: [...contact.followers], [adding ? "followersAdded" : "followersRemoved"]: changed };
      return ok(adding ? 201 : 200, answer);
    });
}

export const followerRoutes = [
  { method: "POST", path: "/contacts/:contactId/followers", handler: changeFollowers(true) },
  { method: "DELETE", path: "/contacts/:contactId/followers", handler: changeFollowers(false), body: "json" },
];
