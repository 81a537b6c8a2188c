// Describes the machine a benchmark or soak ran on, so that printed figures carry their context.

import os from "node:os";

/** `{ cpus, model, memoryGiB, os, node }` of this machine. */
export function machine() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: cpus[0]?.model?.trim() ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

/** One line: "2 CPUs (model), 24 GiB, Linux ..., Node v20...". */
export function describeMachine() {
  const m = machine();
  return `${m.cpus} CPUs (${m.model}), ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}`;
}
