// Contacts API v2 tasks of a contact: create, list, get, update, mark completed and delete.
// Tasks are kept in the store's `tasks` collection with the `contactId` they belong to.

import { apiError, ok } from "../http.mjs";
import { boolean, isoDateString, string, unprocessable } from "../validate.mjs";
import { newId, setOrDelete, withContact } from "./contacts.mjs";

/** The properties of the spec's CreateTaskParams / UpdateTaskBody. */
const TASK_FIELDS = { title: string, body: string, dueDate: isoDateString, completed: boolean, assignedTo: string };
const CREATE_TASK = { fields: TASK_FIELDS, required: ["title", "dueDate", "completed"] };
const UPDATE_TASK = { fields: TASK_FIELDS };
/** The spec's UpdateTaskStatusParams. */
const TASK_COMPLETED = { fields: { completed: boolean }, required: ["completed"] };

const TASK_NOT_FOUND = () => apiError(400, "Task not found");

function applyTaskFields(task, body) {
  for (const [key, value] of Object.entries(body)) setOrDelete(task, key, value);
}

/** Runs `handler(task)` for the task `:taskId` of `contact`, or answers "Task not found". */
function withTask(ctx, contact, handler) {
  const task = ctx.store.tasks.get(ctx.params.taskId);
  return task && task.contactId === contact.id ? handler(task) : TASK_NOT_FOUND();
}

const reply = (status, task) => ok(status, { task: structuredClone(task) });

function createTask(ctx) {
  return (
    unprocessable(ctx.body, CREATE_TASK) ??
    withContact(ctx, (contact) => {
      const task = { id: newId(ctx, ctx.store.tasks) };
      applyTaskFields(task, ctx.body);
      task.contactId = contact.id;
      ctx.store.tasks.set(task.id, task);
      return reply(201, task);
    })
  );
}

function listTasks(ctx) {
  return withContact(ctx, (contact) => {
    const tasks = [...ctx.store.tasks.values()].filter((t) => t.contactId === contact.id);
    return ok(200, { tasks: structuredClone(tasks) });
  });
}

function getTask(ctx) {
  return withContact(ctx, (contact) => withTask(ctx, contact, (task) => reply(200, task)));
}

/** PUT handlers: validate the body against `shape`, then apply it to the task. */
function changeTask(shape) {
  return (ctx) =>
    unprocessable(ctx.body, shape) ??
    withContact(ctx, (contact) =>
      withTask(ctx, contact, (task) => {
        applyTaskFields(task, ctx.body);
        return reply(200, task);
      }),
    );
}

function deleteTask(ctx) {
  return withContact(ctx, (contact) =>
    withTask(ctx, contact, (task) => {
      ctx.store.tasks.delete(task.id);
      return ok(200, { succeded: true }); // sic: the API's spelling
    }),
  );
}

export const taskRoutes = [
  { method: "POST", path: "/contacts/:contactId/tasks", handler: createTask },
  { method: "GET", path: "/contacts/:contactId/tasks", handler: listTasks },
  { method: "GET", path: "/contacts/:contactId/tasks/:taskId", handler: getTask },
  { method: "PUT", path: "/contacts/:contactId/tasks/:taskId", handler: changeTask(UPDATE_TASK) },
  { method: "PUT", path: "/contacts/:contactId/tasks/:taskId/completed", handler: changeTask(TASK_COMPLETED) },
  { method: "DELETE", path: "/contacts/:contactId/tasks/:taskId", handler: deleteTask },
];
