// The per-operation worker of scripts/opcost.mjs: each request does one kind of runtime operation
// `k` times (query: ?op=NAME&k=K&key=K&target=URL), so that the script can read the CPU each
// operation costs the workerd process that runs it under `wrangler dev`.
const SMALL = "x".repeat(40);
const KILO = JSON.stringify({ pad: "y".repeat(1000) });
const LOG_LINE = { msg: "webhook", webhook_id: "msg_ops_0000", event: "contact.updated", outcome: "applied", api_calls: 1, attempt: 1, pad: "z".repeat(180) };

const OPS = {
  none: async () => {},
  get: async (env, key) => env.KV.get(key),
  getmiss: async (env, key) => env.KV.get(`missing:${key}`),
  getmeta: async (env, key) => env.KV.getWithMetadata(key),
  put: async (env, key) => env.KV.put(key, SMALL),
  put1k: async (env, key) => env.KV.put(key, KILO),
  putmeta: async (env, key) => env.KV.put(key, SMALL, { metadata: { due: 1, attempt: 2 } }),
  putttl: async (env, key) => env.KV.put(key, SMALL, { expirationTtl: 3600 }),
  delete: async (env, key) => env.KV.delete(key),
  list: async (env) => env.KV.list({ prefix: "ops:", limit: 100 }),
  fetch: async (env, key, target) => (await fetch(target)).text(),
  log: async () => console.log(JSON.stringify(LOG_LINE)),
  timer: async () => new Promise((resolve) => setTimeout(resolve, 50)),
};

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const op = OPS[url.searchParams.get("op") ?? "none"];
    if (!op) return new Response("no such op", { status: 404 });
    const k = Number(url.searchParams.get("k") ?? "1");
    const key = `ops:${url.searchParams.get("key") ?? "0"}`;
    const target = url.searchParams.get("target");
    const work = (async () => {
      for (let i = 0; i < k; i++) await op(env, key, target);
    })();
    if (url.searchParams.get("wait") === "1") ctx.waitUntil(work);
    else await work;
    return new Response("ok");
  },
};
