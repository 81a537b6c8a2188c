// The manual's checks: README.md stays under 15 KB; every relative link in README.md and docs/*.md
// reaches a file that exists and, with a `#anchor`, a heading of that file (GitHub's heading
// slugs); every setting the worker reads (src/settings.rs) is described in docs/configuration.md.

import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOCS = [
  "README.md",
  ...readdirSync(path.join(ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

/** GitHub's heading slug: lower case, punctuation but `-` and `_` dropped, spaces to `-`, repeats numbered. */
function anchors(markdown) {
  const seen = new Map();
  const found = new Set();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const heading = !fenced && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const text = heading[1].replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/<[^>]+>/g, "");
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    found.add(n === 0 ? base : `${base}-${n}`);
  }
  return found;
}

/** Every link target in `markdown` outside code: `[text](target)` and `![alt](target)`. */
function links(markdown) {
  const targets = [];
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      continue;
    }
    if (fenced) continue;
    const prose = line.replace(/`[^`]*`/g, "");
    for (const match of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) targets.push(match[1]);
  }
  return targets;
}

test("README.md is under 15 KB", () => {
  const size = statSync(path.join(ROOT, "README.md")).size;
  assert.ok(size < 15 * 1024, `README.md is ${size} bytes`);
});

for (const doc of DOCS) {
  test(`every link in ${doc} reaches a file and heading that exist`, () => {
    const source = path.join(ROOT, doc);
    const broken = [];
    for (const target of links(readFileSync(source, "utf8"))) {
      if (/^[a-z]+:/i.test(target)) continue; // https:, mailto: (not checked: no network)
      const [file, anchor] = target.split("#");
      const resolved = file ? path.resolve(path.dirname(source), decodeURIComponent(file)) : source;
      if (!existsSync(resolved)) {
        broken.push(`${target}: no such file`);
        continue;
      }
      if (anchor !== undefined) {
        if (!resolved.endsWith(".md")) {
          broken.push(`${target}: an anchor into a file that is not Markdown`);
        } else if (!anchors(readFileSync(resolved, "utf8")).has(anchor)) {
          broken.push(`${target}: no heading #${anchor} in ${path.relative(ROOT, resolved)}`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });
}

test("every setting src/settings.rs reads is described in docs/configuration.md", () => {
  const rust = readFileSync(path.join(ROOT, "src/settings.rs"), "utf8");
  const list = /pub const NAMES: &\[&str\] = &\[([\s\S]*?)\];/.exec(rust)[1];
  const constants = new Map();
  for (const file of ["src/settings.rs", "src/read/budget.rs", "src/read/mod.rs", "src/auth/api_keys.rs"]) {
    for (const [, name, value] of readFileSync(path.join(ROOT, file), "utf8").matchAll(/const (\w+): &str = "(\w+)";/g)) {
      constants.set(name, value);
    }
  }
  const names = list
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean)
    .map((item) => (item.startsWith('"') ? item.slice(1, -1) : constants.get(item)));
  assert.ok(names.length >= 29 && names.every(Boolean), `read the list: ${names}`);
  const configuration = readFileSync(path.join(ROOT, "docs/configuration.md"), "utf8");
  const missing = names.filter((name) => !configuration.includes(`| \`${name}\` |`));
  assert.deepEqual(missing, [], "each has a row in the settings table");
});
