// Keeps track of requests the simulator is deliberately holding (latency faults) or never
// answering (hang faults), so that clearFaults() and close() can let go of them promptly.

export function createInflight() {
  const hung = new Set();
  const delayed = new Set();

  function destroy(res) {
    res.socket?.destroy();
    res.destroy();
  }

  return {
    /** Holds `res` unanswered until release() or closeAll(). */
    hang(res) {
      hung.add(res);
      res.on("close", () => hung.delete(res));
    },

    /** Resolves true after `ms`, or false if the simulator closed meanwhile. */
    delay(ms, res) {
      return new Promise((resolve) => {
        const entry = { res, resolve };
        entry.timer = setTimeout(() => {
          delayed.delete(entry);
          resolve(true);
        }, ms);
        delayed.add(entry);
      });
    },

    /** Destroys the sockets of every hung request. */
    releaseHung() {
      for (const res of hung) destroy(res);
      hung.clear();
    },

    closeAll() {
      this.releaseHung();
      for (const entry of delayed) {
        clearTimeout(entry.timer);
        destroy(entry.res);
        entry.resolve(false);
      }
      delayed.clear();
    },
  };
}
