// No merge-conflict markers in any tracked file: a merge once committed README.md with them
// (nothing else fails on a marker in Markdown, and TypeScript only where it compiles).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

const ROOT = path.join(__dirname, "..", "..");

test("no tracked file carries a merge-conflict marker", () => {
  const files = execFileSync("git", ["-C", ROOT, "ls-files", "-z"], { encoding: "utf8" }).split("\0").filter(Boolean);
  assert.ok(files.length > 100, `only ${files.length} tracked files: not a checkout?`);
  const marked: string[] = [];
  for (const f of files) {
    const p = path.join(ROOT, f);
    if (!fs.existsSync(p) || fs.lstatSync(p).isSymbolicLink() || fs.statSync(p).size > 2_000_000) continue;
    const text = fs.readFileSync(p, "utf8");
    const at = text.split("\n").findIndex((l) => /^(<{7}|>{7})( |$)/.test(l));
    if (at >= 0) marked.push(`${f}:${at + 1}`);
  }
  assert.deepEqual(marked, []);
});
