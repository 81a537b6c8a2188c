// The benchmark's floor: a worker that answers "ok" to every request and does nothing else, run
// under `wrangler dev` beside the product so that scripts/bench.mjs can print the runtime's own
// latency and CPU cost next to the product's.
export default {
  fetch() {
    return new Response("ok");
  },
};
