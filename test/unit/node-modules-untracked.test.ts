// node_modules is never tracked: a worktree's node_modules symlink (to a shared install) was once
// committed, and `node_modules/` in .gitignore does not match a symlink (git sees a file there).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

const ROOT = path.join(__dirname, "..", "..");
const git = (...args: string[]) => execFileSync("git", ["-C", ROOT, ...args], { encoding: "utf8" });

test("no node_modules, directory or symlink, is tracked", () => {
  const tracked = git("ls-files", "-z").split("\0").filter((f) => f.split("/").includes("node_modules"));
  assert.deepEqual(tracked, []);
});

test(".gitignore ignores node_modules whether it is a directory or a symlink", () => {
  const lines = fs.readFileSync(path.join(ROOT, ".gitignore"), "utf8").split("\n").map((l) => l.trim());
  assert.ok(lines.includes("node_modules"), "`node_modules` without the trailing slash (a slash matches directories only)");
  // what git itself says of a symlink named node_modules (no need for one to exist)
  assert.match(git("check-ignore", "--no-index", "-v", "node_modules"), /node_modules/);
});
