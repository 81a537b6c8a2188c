// Linux `perf` for the benchmark: samples a process's on-CPU time (every thread, with call
// chains) while a piece of work runs, and sums the samples into categories that say where a
// workerd process's CPU goes (V8's JIT code, its interpreter and builtins, GC, compilation, the
// inspector, SQLite behind the simulated KV, the kernel, workerd's own C++, ...). Needs `perf`
// and permission to attach to the process (root, or perf_event_paranoid <= 1 for your processes).

import { execFileSync, spawn } from "node:child_process";

/** Starts `perf record` on process `pid` into `file`; resolves to `{ stop() }` once it is sampling. */
export async function startPerf(pid, file, { frequency = 1999 } = {}) {
  const child = spawn("perf", ["record", "-q", "-F", String(frequency), "-g", "-p", String(pid), "-o", file], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.once("exit", resolve));
  await new Promise((resolve) => setTimeout(resolve, 500));
  if (child.exitCode !== null) throw new Error(`perf record failed: ${stderr}`);
  return {
    async stop() {
      child.kill("SIGINT");
      await exited;
    },
  };
}

/** Whether `perf` is on the PATH. */
export function havePerf() {
  try {
    execFileSync("perf", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// First matching rule wins; each tests a sample's own symbol and DSO (no call chain).
const RULES = [
  ["kernel (syscalls, network, files)", (sym, dso) => dso.includes("kernel") || sym.startsWith("[k]")],
  ["sqlite (simulated KV storage)", (sym) => /^sqlite3|^sqlite/i.test(sym)],
  ["V8 GC", (sym) => /Heap::|Scaveng|MarkCompact|Sweeper|Marking|ConcurrentMark|GCTracer|Evacuat|MemoryAllocator|MemoryChunk|cppgc|heap::/.test(sym)],
  ["V8 compile (JS parse/compile, Wasm compile)", (sym) => /Parser|Compiler|Compile|Liftoff|turboshaft|compiler::|wasm::.*(Decod|Compil)|Bytecode|Scanner|maglev/i.test(sym)],
  ["V8 inspector / DevTools", (sym) => /inspector|Inspector|V8Console|protocol::/.test(sym)],
  ["JIT code (JS and Wasm, every isolate)", (sym, dso) => dso === "[unknown]" || dso.startsWith("[JIT") || dso.includes("anon") || dso.startsWith("/tmp/perf-")],
  ["V8 builtins / interpreter", (sym) => sym.startsWith("Builtins_")],
  ["V8 runtime (other)", (sym) => /v8::|v8_|Runtime_|icu_/.test(sym)],
  ["libc / allocator", (sym, dso) => /libc|libm|ld-linux|libstdc|libpthread/.test(dso) || /^(malloc|free|memcpy|memmove|memset|__|operator new|operator delete|tc_)/.test(sym)],
  ["workerd / kj / capnp (C++)", (sym) => /workerd|kj::|capnp|jsg::|edgeworker/.test(sym)],
  ["other", () => true],
];

/**
 * Sums the samples of `file` by category and by symbol. Returns
 * `{ samples, categories: [{ name, share }], symbols: [{ sym, dso, share }] }` (shares of all
 * samples, 0-1).
 */
export function summarizePerf(file, top = 30) {
  const text = execFileSync("perf", ["report", "-i", file, "--stdio", "--no-children", "-g", "none", "--sort", "dso,sym", "--percent-limit", "0", "-F", "overhead,dso,sym"], {
    encoding: "utf8",
    maxBuffer: 256 * 2 ** 20,
    stdio: ["ignore", "pipe", "ignore"],
  });
  const symbols = [];
  for (const line of text.split("\n")) {
    const match = /^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$/.exec(line);
    if (!match) continue;
    const [, pct, dso, kind, sym] = match;
    symbols.push({ share: Number(pct) / 100, dso: kind === "k" ? "[kernel]" : dso, sym: sym.trim() });
  }
  const totals = new Map(RULES.map(([name]) => [name, 0]));
  for (const s of symbols) {
    const [name] = RULES.find(([, test]) => test(s.sym, s.dso));
    totals.set(name, totals.get(name) + s.share);
  }
  const count = /^# Samples: ([\d.]+)([KM]?)/m.exec(text);
  const samples = count ? Math.round(Number(count[1]) * ({ K: 1e3, M: 1e6 }[count[2]] ?? 1)) : NaN;
  return {
    samples,
    categories: [...totals].map(([name, share]) => ({ name, share })).filter((c) => c.share > 0).sort((a, b) => b.share - a.share),
    symbols: symbols.sort((a, b) => b.share - a.share).slice(0, top),
  };
}
