// The Mapping view: the field mapping as a form (one row per field: a SightMill field or a
// constant, a Contacts API target from the list the worker accepts, a custom field picked by name
// from the location's list with its type and options shown, or an id or key typed by hand,
// transforms; the status rule; the default country code; the actions beyond fields, with workflows
// and campaigns picked by name). Every edit is checked by the worker's own parser
// (mapping/validate) and dry-runs the sample event of the chosen type (mapping/dry-run), showing
// the exact requests, the converted values, what would be left out and the actions' calls.
// Saving makes it the location's live mapping; one click goes back to the deployed one.

import { api, describe } from "./api.js";
import { $, confirm, debounce, h, when } from "./ui.js";

let catalogue = null;
let rows = [];
let actionRows = [];
/** The location's lists (mapping/custom-fields, mapping/workflows, mapping/campaigns): empty until read. */
let lists = { customFields: [], workflows: [], campaigns: [] };
/** Which reading of the lists is the latest (see loadLists). */
let listsReading = 0;
const samples = new Map();

/** Reads the catalogue and binds the form; false when the catalogue could not be read (tried again next time). */
export async function setUp() {
  const answer = await api("GET", "mapping/catalogue");
  if (!answer.ok) {
    $("#mapping-effective").textContent = `The mapping's catalogue could not be read: ${describe(answer)}`;
    $("#save-mapping").disabled = true;
    return false;
  }
  catalogue = answer.json;
  const select = $("#sample-type");
  for (const type of catalogue.event_types) select.append(h("option", { value: type, text: type }));
  select.addEventListener("change", showSample);
  $("#sample-body").addEventListener("input", () => {
    samples.set($("#sample-type").value, $("#sample-body").value);
    check();
  });
  $("#mapping-form").addEventListener("input", changed);
  $("#mapping-form").addEventListener("change", changed);
  $("#mapping-form").addEventListener("submit", (event) => event.preventDefault());
  $("#add-row").addEventListener("click", () => {
    rows.push({ source: "field", text: "", to: catalogue.targets[0].name, customId: "", transforms: [] });
    render();
    changed();
    document.querySelector("#mapping-rows tbody tr:last-child input").focus();
  });
  $("#add-action").addEventListener("click", () => {
    actionRows.push({ when: catalogue.actions.when[0], value: "", do: catalogue.actions.do[0], id: "", followers: "" });
    render();
    changed();
    document.querySelector("#action-rows tbody tr:last-child input").focus();
  });
  $("#save-mapping").addEventListener("click", save);
  $("#revert-mapping").addEventListener("click", revert);
  $("#copy-mapping").addEventListener("click", copy);
  showSample();
}

export async function load() {
  if (!catalogue) return; // setUp said why
  const answer = await api("GET", "mapping");
  if (!answer.ok) {
    $("#save-mapping").disabled = true;
    return ($("#mapping-effective").textContent = describe(answer));
  }
  showEffective(answer.json);
  await loadLists();
  fill(answer.json.live?.document ?? answer.json.deployed);
}

/**
 * Reads the location's custom fields, workflows and campaigns to pick from by name. A list the
 * token may not read (403 missing_scope) is said, with the scope; ids typed by hand still work.
 */
async function loadLists() {
  // Read fresh each time the view is shown (the worker's kept copy of the custom fields too):
  // a field made in GoHighLevel since shows up here. Only the latest reading is shown: an
  // earlier one that answers later is dropped.
  const reading = ++listsReading;
  const [fields, workflows, campaigns] = await Promise.all([
    api("GET", "mapping/custom-fields", { query: { refresh: "true" } }),
    api("GET", "mapping/workflows"),
    api("GET", "mapping/campaigns"),
  ]);
  if (reading !== listsReading) return;
  lists = {
    customFields: fields.ok ? fields.json.customFields : [],
    workflows: workflows.ok ? workflows.json.workflows : [],
    campaigns: campaigns.ok ? campaigns.json.campaigns : [],
  };
  const problems = [["Custom fields", fields], ["Workflows", workflows], ["Campaigns", campaigns]]
    .filter(([, answer]) => !answer.ok)
    .map(([what, answer]) =>
      answer.json?.error === "missing_scope"
        ? `${what} cannot be listed: the token needs the scope ${answer.json.scope}. Ids typed by hand still work.`
        : `${what} could not be listed: ${describe(answer)}. Ids typed by hand still work.`,
    );
  $("#mapping-lists").textContent = problems.join(" ");
}

/** A custom field of the location's list, by its id or key. */
const listedField = (reference) => lists.customFields.find((f) => f.id === reference || f.fieldKey === reference);

/** The type and options of the custom field `reference` names, as the location defines it. */
function fieldHint(reference) {
  if (!reference) return "";
  const field = listedField(reference);
  if (!field) return lists.customFields.length ? "Not in this location's list." : "";
  const options = field.picklistOptions?.length ? `: ${field.picklistOptions.join(", ")}` : "";
  return `${field.name}: ${field.dataType}, ${field.expects}${options}`;
}

/** Another connection is chosen: nothing of the last one's can be saved until its own is read. */
export function reset() {
  $("#mapping-effective").textContent = "";
  $("#mapping-result").textContent = "";
  $("#save-mapping").disabled = true;
  $("#revert-mapping").disabled = true;
}

function showEffective({ effective, live }) {
  $("#mapping-effective").textContent =
    effective === "live"
      ? `The live mapping applies: saved by ${live.saved_by || "?"} at ${when(live.saved_at)}.`
      : "The deployed mapping (CONTACT_MAPPING) applies.";
  $("#revert-mapping").disabled = effective !== "live";
}

/** Puts a mapping document into the form. */
function fill(document_) {
  rows = document_.fields.map((entry) => {
    const custom = entry.to.startsWith(catalogue.custom_field_prefix);
    return {
      source: "from" in entry ? "field" : "constant",
      text: "from" in entry ? entry.from : String(entry.value),
      to: custom ? "customField" : entry.to,
      customId: custom ? entry.to.slice(catalogue.custom_field_prefix.length) : "",
      transforms: entry.transforms ?? [],
      // Kept as they are (edited in the JSON): a value map and a longest text.
      extra: Object.fromEntries(["values", "max_length"].filter((k) => k in entry).map((k) => [k, entry[k]])),
      onInvalid: entry.on_invalid ?? "park",
    };
  });
  actionRows = (document_.actions ?? []).map((rule) => ({
    ...rule,
    id: rule.id ?? "",
    followers: (rule.followers ?? []).join(", "),
  }));
  const status = document_.status;
  $("#status-to").value = !status ? "" : status.to === "tag" ? "tag" : "customField";
  $("#status-arg").value = !status ? "" : status.to === "tag" ? status.prefix ?? "" : status.to.slice(catalogue.custom_field_prefix.length);
  $("#country-code").value = document_.default_country_code ?? "";
  $("#existing-contacts").value = document_.existing_contacts ?? "create";
  $("#sightmill-id-field").value = document_.sightmill_id_field ?? "";
  render();
  changed();
}

/** The form as a mapping document. */
function documentOf() {
  const flags = new Set(catalogue.targets.filter((t) => t.kind === "flag").map((t) => t.name));
  const fields = rows.map((row) => {
    const entry = {};
    if (row.source === "field") entry.from = row.text;
    else entry.value = flags.has(row.to) && ["true", "false"].includes(row.text) ? row.text === "true" : row.text;
    entry.to = row.to === "customField" ? `${catalogue.custom_field_prefix}${row.customId}` : row.to;
    if (row.transforms.length) entry.transforms = row.transforms;
    if (row.to === "customField") {
      Object.assign(entry, row.extra ?? {});
      if (row.onInvalid === "omit") entry.on_invalid = "omit";
    }
    return entry;
  });
  const document_ = { fields };
  const actions = actionRows.map((row) => {
    const rule = { when: row.when, value: row.value, do: row.do };
    if (row.do.endsWith("followers")) rule.followers = row.followers.split(",").map((u) => u.trim()).filter(Boolean);
    else rule.id = row.id;
    const listed = flowsFor(row.do).find((flow) => flow.id === row.id);
    if (listed ?? row.name) rule.name = listed?.name ?? row.name;
    return rule;
  });
  if (actions.length) document_.actions = actions;
  const statusTo = $("#status-to").value;
  const arg = $("#status-arg").value;
  if (statusTo === "tag") document_.status = { to: "tag", prefix: arg };
  if (statusTo === "customField") document_.status = { to: `${catalogue.custom_field_prefix}${arg}` };
  if ($("#country-code").value.trim()) document_.default_country_code = $("#country-code").value.trim();
  if ($("#existing-contacts").value === "adopt") document_.existing_contacts = "adopt";
  if ($("#sightmill-id-field").value.trim()) document_.sightmill_id_field = $("#sightmill-id-field").value.trim();
  return document_;
}

function render() {
  renderActions();
  const targets = [
    ...catalogue.targets.map((t) => [t.name, `${t.name}${t.kind === "flag" ? " (true/false)" : ""} — ${t.on_update}`]),
    [catalogue.split_name, `${catalogue.split_name} — the name split at the first space`],
    ["customField", "a custom field (pick it, or give its id or key)"],
  ];
  $("#mapping-rows tbody").replaceChildren(
    ...rows.map((row, i) => {
      const n = i + 1;
      const update = (key) => (event) => {
        row[key] = event.target.value;
        const tr = event.target.closest("tr");
        for (const input of tr.querySelectorAll("[data-custom]")) input.disabled = row.to !== "customField";
        tr.querySelector("[data-source-text]").setAttribute("aria-label", sourceLabel(n, row));
        tr.querySelector("[data-custom-hint]").textContent = fieldHint(row.customId);
      };
      const pick = (event) => {
        if (!event.target.value) return;
        row.customId = event.target.value;
        const tr = event.target.closest("tr");
        tr.querySelector("[data-custom-id]").value = row.customId;
        tr.querySelector("[data-custom-hint]").textContent = fieldHint(row.customId);
        changed();
      };
      const picked = listedField(row.customId);
      const custom = row.to !== "customField";
      const transforms = catalogue.transforms.map((name) =>
        h(
          "label",
          { class: "check" },
          h("input", {
            type: "checkbox",
            checked: row.transforms.includes(name),
            onchange: (event) => {
              row.transforms = catalogue.transforms.filter((t) => (t === name ? event.target.checked : row.transforms.includes(t)));
            },
          }),
          ` ${name}`,
        ),
      );
      return h(
        "tr",
        { "data-row": i },
        h("td", {}, h("select", { "aria-label": `Field ${n}: source`, onchange: update("source") },
          h("option", { value: "field", text: "SightMill field", selected: row.source === "field" }),
          h("option", { value: "constant", text: "constant", selected: row.source === "constant" }))),
        h("td", {}, h("input", {
          value: row.text, spellcheck: "false", oninput: update("text"), "data-source-text": true,
          "aria-label": sourceLabel(n, row),
        })),
        h("td", {}, h("select", { "aria-label": `Field ${n}: Contacts API target`, onchange: update("to") },
          ...targets.map(([value, label]) => h("option", { value, text: label, selected: row.to === value })))),
        h("td", {},
          h("select", { "aria-label": `Field ${n}: custom field by name`, disabled: custom, onchange: pick, "data-custom": true },
            h("option", { value: "", text: lists.customFields.length ? "— pick by name —" : "— none listed —" }),
            ...lists.customFields.map((f) => h("option", { value: f.fieldKey || f.id, text: `${f.name} (${f.dataType})`, selected: f === picked }))),
          h("input", {
            value: row.customId, spellcheck: "false", disabled: custom, oninput: update("customId"),
            "data-custom-id": true, "data-custom": true,
            "aria-label": `Field ${n}: custom field id or key`,
          }),
          h("select", { "aria-label": `Field ${n}: a value that cannot fit`, disabled: custom, "data-custom": true, onchange: update("onInvalid") },
            h("option", { value: "park", text: "cannot fit: park the event", selected: row.onInvalid !== "omit" }),
            h("option", { value: "omit", text: "cannot fit: leave the field out", selected: row.onInvalid === "omit" })),
          h("small", { class: "hint", "data-custom-hint": true, text: fieldHint(row.customId) })),
        h("td", {}, h("fieldset", { class: "transforms" }, h("legend", { class: "visually-hidden", text: `Field ${n}: transforms` }), ...transforms)),
        h("td", {}, h("button", { type: "button", text: "Remove", "aria-label": `Remove field ${n}`, onclick: () => {
          rows.splice(i, 1);
          render();
          changed();
        } })),
      );
    }),
  );
}

/** The workflows or campaigns an action's `do` picks from. */
const flowsFor = (effect) => (effect.endsWith("workflow") ? lists.workflows : effect.endsWith("campaign") ? lists.campaigns : []);

function renderActions() {
  $("#action-rows tbody").replaceChildren(
    ...actionRows.map((row, i) => {
      const n = i + 1;
      const set = (key) => (event) => {
        row[key] = event.target.value;
        if (key === "do") render();
      };
      const followers = row.do.endsWith("followers");
      const flows = flowsFor(row.do);
      const target = followers
        ? h("input", { value: row.followers, spellcheck: "false", oninput: set("followers"), "aria-label": `Action ${n}: follower user ids` })
        : h("span", {},
            h("select", {
              "aria-label": `Action ${n}: ${row.do.endsWith("workflow") ? "workflow" : "campaign"} by name`,
              onchange: (event) => {
                if (!event.target.value) return;
                row.id = event.target.value;
                event.target.closest("td").querySelector("[data-flow-id]").value = row.id;
                changed();
              },
            },
            h("option", { value: "", text: flows.length ? "— pick by name —" : "— none listed —" }),
            ...flows.map((flow) => h("option", { value: flow.id, text: `${flow.name}${flow.status ? ` (${flow.status})` : ""}`, selected: flow.id === row.id }))),
            h("input", { value: row.id, spellcheck: "false", oninput: set("id"), "data-flow-id": true, "aria-label": `Action ${n}: id` }));
      return h(
        "tr",
        { "data-action": i },
        h("td", {}, h("select", { "aria-label": `Action ${n}: when`, onchange: set("when") },
          ...catalogue.actions.when.map((when) => h("option", { value: when, text: when.replaceAll("_", " "), selected: row.when === when })))),
        h("td", {}, h("input", { value: row.value, spellcheck: "false", oninput: set("value"), "aria-label": `Action ${n}: status or tag` })),
        h("td", {}, h("select", { "aria-label": `Action ${n}: do`, onchange: set("do") },
          ...catalogue.actions.do.map((effect) => h("option", { value: effect, text: effect.replaceAll("_", " "), selected: row.do === effect })))),
        h("td", {}, target),
        h("td", {}, h("button", { type: "button", text: "Remove", "aria-label": `Remove action ${n}`, onclick: () => {
          actionRows.splice(i, 1);
          render();
          changed();
        } })),
      );
    }),
  );
}

function sourceLabel(n, row) {
  return `Field ${n}: ${row.source === "field" ? "SightMill field (a dotted path)" : "constant value"}`;
}

const check = debounce(async () => {
  const document_ = documentOf();
  for (const tr of document.querySelectorAll("#mapping-rows tbody tr")) tr.removeAttribute("aria-invalid");
  const answer = await api("POST", "mapping/validate", { body: document_ });
  const message = $("#mapping-validation");
  $("#save-mapping").disabled = !answer.ok;
  if (!answer.ok) {
    message.className = "validation invalid";
    message.textContent = `Not valid: ${answer.json?.message ?? describe(answer)}`;
    const row = /^fields\[(\d+)\]$/.exec(answer.json?.entry ?? "");
    if (row) document.querySelector(`#mapping-rows tbody tr[data-row="${row[1]}"]`)?.setAttribute("aria-invalid", "true");
    $("#dry-run-output").textContent = "Fix the mapping to see the dry run.";
    return;
  }
  message.className = "validation valid";
  message.textContent = "The mapping is valid.";
  dryRun(document_);
}, 250);

function changed() {
  $("#mapping-json").value = JSON.stringify(documentOf(), null, 2);
  check();
}

async function dryRun(document_) {
  let event;
  try {
    event = JSON.parse($("#sample-body").value);
  } catch (error) {
    $("#dry-run-output").textContent = `The sample is not JSON: ${error.message}`;
    return;
  }
  const answer = await api("POST", "mapping/dry-run", { body: { mapping: document_, event } });
  if (!answer.ok) {
    $("#dry-run-output").textContent = `Refused: ${describe(answer)}`;
    return;
  }
  const { decision, requests, reason, outcome, left_out: leftOut = [], actions = [] } = answer.json;
  const lines = [`decision: ${decision}${reason ? ` (${reason})` : ""}${outcome ? ` ${JSON.stringify(outcome)}` : ""}`];
  for (const note of leftOut) lines.push(note);
  const show = (request) => {
    lines.push("", `${request.method} ${request.path}`);
    if (request.body !== undefined && request.body !== null) lines.push(JSON.stringify(request.body, null, 2));
  };
  requests.forEach(show);
  for (const action of actions) {
    lines.push("", `action: ${action.action}${action.skipped ? ` (not sent: ${action.skipped})` : ""}`);
    if (action.request) show(action.request);
  }
  $("#dry-run-output").textContent = lines.join("\n");
}

async function save() {
  if (!(await confirm("Save this mapping as the location's live mapping? The next webhook is applied with it."))) return;
  const answer = await api("PUT", "mapping", { body: documentOf() });
  if (!answer.ok) return ($("#mapping-result").textContent = `Not saved: ${describe(answer)}`);
  showEffective(answer.json);
  $("#mapping-result").textContent = `Saved: the live mapping, by ${answer.json.live.saved_by} at ${when(answer.json.live.saved_at)}.`;
}

async function revert() {
  if (!(await confirm("Remove the live mapping and go back to the deployed CONTACT_MAPPING?"))) return;
  const answer = await api("DELETE", "mapping");
  if (!answer.ok) return ($("#mapping-result").textContent = `Not changed: ${describe(answer)}`);
  $("#mapping-result").textContent = "The deployed mapping applies again.";
  load();
}

async function copy() {
  const text = JSON.stringify(documentOf());
  try {
    await navigator.clipboard.writeText(text);
    $("#mapping-result").textContent = "Copied: set it as CONTACT_MAPPING to deploy this mapping.";
  } catch {
    $("#mapping-json").select();
    $("#mapping-result").textContent = "Selected below: copy it and set it as CONTACT_MAPPING.";
  }
}

function showSample() {
  const type = $("#sample-type").value;
  if (!samples.has(type)) samples.set(type, JSON.stringify(sample(type), null, 2));
  $("#sample-body").value = samples.get(type);
  check();
}

/** A SightMill event of `type`, as SightMill would send it. */
function sample(type) {
  const updated_at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const contact = { id: "sm_sample_1", updated_at };
  const about = { contact_id: "sm_sample_1", updated_at };
  const data = {
    "contact.created": { ...contact, name: "Ada Lovelace", email: " Ada@Example.com ", phone: "+1 555 010 0199", status: "customer" },
    "contact.updated": { ...contact, email: "ada@example.org", status: "vip" },
    "contact.deleted": contact,
    "note.created": { ...about, id: "note_sample_1", body: "Called about the renewal." },
    "note.updated": { ...about, id: "note_sample_1", body: "Called about the renewal; call back Monday." },
    "note.deleted": { ...about, id: "note_sample_1" },
    "tag.added": { ...about, tag: "newsletter" },
    "tag.removed": { ...about, tag: "newsletter" },
    "task.created": { ...about, id: "task_sample_1", title: "Send the quote", body: null, due_date: updated_at, completed: false },
    "task.updated": { ...about, id: "task_sample_1", title: "Send the revised quote", body: null, due_date: updated_at, completed: false },
    "task.completed": { ...about, id: "task_sample_1" },
    "task.deleted": { ...about, id: "task_sample_1" },
  }[type];
  return { type, timestamp: updated_at, data };
}
