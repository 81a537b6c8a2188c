// Workflows and campaigns, and a contact's place in them (apps/workflows.json, apps/campaigns.json,
// and the contact routes of apps/contacts.json): list a location's workflows (GET /workflows/) and
// campaigns (GET /campaigns/, filtered by `status`); add a contact to one or remove it (POST and
// DELETE /contacts/:contactId/workflow/:workflowId and /campaigns/:campaignId), or from every
// campaign (DELETE /contacts/:contactId/campaigns/removeAll). Workflows and campaigns are seeded by
// tests (control API). Every add is an enrollment of its own, as a workflow that allows re-entry
// makes it: an add sent twice enrols the contact twice (`state().enrollments`), which is what the
// worker must never do. A remove ends the contact's open enrollments and answers the same when
// there are none.

import { apiError, ok } from "../http.mjs";
import { isoDateString, string, unprocessable } from "../validate.mjs";
import { newId, NO_LOCATION_ACCESS, withContact } from "./contacts.mjs";

export const WORKFLOWS_SCOPE = "workflows.readonly";
export const CAMPAIGNS_SCOPE = "campaigns.readonly";

/** The spec's CreateWorkflowDto (the body of both the add and the remove). */
const WORKFLOW_BODY = { fields: { eventStartTime: isoDateString } };
/** The spec's AddContactToCampaignDto: no properties. */
const CAMPAIGN_BODY = { fields: {} };

const KINDS = {
  workflow: { collection: "workflows", notFound: "Workflow not found" },
  campaign: { collection: "campaigns", notFound: "Campaign not found" },
};

/** Seeds a workflow or campaign (`kind`) `{ name, status?, id? }` in `locationId`; returns it. */
export function addFlow(ctx, kind, locationId, fields) {
  const records = ctx.store[KINDS[kind].collection];
  const stamp = new Date(ctx.now()).toISOString();
  const flow = { id: fields.id ?? newId(ctx, records), name: fields.name, status: fields.status ?? "published", locationId };
  if (kind === "workflow") Object.assign(flow, { version: 1, createdAt: stamp, updatedAt: stamp });
  records.set(flow.id, flow);
  return flow;
}

/** GET /workflows/ or /campaigns/ with the required `locationId` (the token's). */
function listFlows(kind) {
  const { collection } = KINDS[kind];
  return (ctx) => {
    const query = { locationId: ctx.query.locationId, status: ctx.query.status };
    const invalid = unprocessable(query, { fields: { locationId: string, status: string }, required: ["locationId"] });
    if (invalid) return invalid;
    if (query.locationId !== ctx.auth.locationId) return NO_LOCATION_ACCESS();
    const flows = [...ctx.store[collection].values()].filter(
      (flow) => flow.locationId === query.locationId && (kind !== "campaign" || !query.status || flow.status === query.status),
    );
    return ok(200, { [collection]: structuredClone(flows) });
  };
}

const open = (store, kind, contactId, flowId) =>
  [...store.enrollments.values()].filter(
    (e) => e.kind === kind && e.contactId === contactId && (flowId === undefined || e.flowId === flowId) && !e.removedAt,
  );

/** POST (add) or DELETE (remove) of the contact in the workflow or campaign `:flowId`. */
function changeMembership(kind, adding) {
  const shape = kind === "workflow" ? WORKFLOW_BODY : CAMPAIGN_BODY;
  return (ctx) =>
    (ctx.body === null ? null : unprocessable(ctx.body, shape)) ??
    withContact(ctx, (contact) => {
      const flow = ctx.store[KINDS[kind].collection].get(ctx.params.flowId);
      if (!flow || flow.locationId !== contact.locationId) return apiError(400, KINDS[kind].notFound);
      const stamp = new Date(ctx.now()).toISOString();
      if (adding) {
        const id = ctx.store.enrollments.size + 1;
        const enrollment = { id, kind, contactId: contact.id, flowId: flow.id, at: stamp, removedAt: null };
        if (ctx.body?.eventStartTime) enrollment.eventStartTime = ctx.body.eventStartTime;
        ctx.store.enrollments.set(id, enrollment);
      } else {
        for (const enrollment of open(ctx.store, kind, contact.id, flow.id)) enrollment.removedAt = stamp;
      }
      return ok(adding && kind === "campaign" ? 201 : 200, { succeded: true });
    });
}

function removeFromEveryCampaign(ctx) {
  return withContact(ctx, (contact) => {
    const stamp = new Date(ctx.now()).toISOString();
    for (const enrollment of open(ctx.store, "campaign", contact.id)) enrollment.removedAt = stamp;
    return ok(200, { succeded: true });
  });
}

export const flowRoutes = [
  { method: "GET", path: "/workflows/", handler: listFlows("workflow"), scope: WORKFLOWS_SCOPE },
  { method: "GET", path: "/campaigns/", handler: listFlows("campaign"), scope: CAMPAIGNS_SCOPE },
  { method: "POST", path: "/contacts/:contactId/workflow/:flowId", handler: changeMembership("workflow", true) },
  { method: "DELETE", path: "/contacts/:contactId/workflow/:flowId", handler: changeMembership("workflow", false), body: "json" },
  { method: "POST", path: "/contacts/:contactId/campaigns/:flowId", handler: changeMembership("campaign", true) },
  { method: "DELETE", path: "/contacts/:contactId/campaigns/:flowId", handler: changeMembership("campaign", false) },
  { method: "DELETE", path: "/contacts/:contactId/campaigns/removeAll", handler: removeFromEveryCampaign },
];
