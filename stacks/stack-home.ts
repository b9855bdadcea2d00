// Where an inventory's synthesized stack lives: beside the inventory, in .binkube/cdktf.out/, not
// in the checkout's shared cdktf.out/. Every `cdktf synth` deletes the directories under
// cdktf.out/stacks/ it did not just write (@cdktf/cli-core synth-stack.js, "orphanedDirectories"),
// so with one shared directory deploying cluster B removed cluster A's stack, under A's running
// Terraform if A was deploying. cdktf finds a stack through cdktf.out/manifest.json, whose paths
// are relative to cdktf.out: binkube writes there a manifest of the one stack it synthesized,
// pointing at the inventory's own directory. cdktf.out/stacks/ stays empty, so nothing is pruned.
//
// The shared manifest is one file for every inventory: between this app writing it and its cdktf
// command reading it, no other synth may write it. A lock held from before the write until that
// command has read it (it runs Terraform in the stack's directory, or exits) keeps them apart;
// bin/manifest-release.cjs holds it for the command once this app has exited.
import { spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "../src/errors";
import { PACKAGE_ROOT } from "../src/paths";
import { Owner } from "../src/deploy/cli-process";
import { Holder, claim, release } from "../src/deploy/owned-lock";
import { procStartTime, writeFileAtomic } from "../src/util/fs";
import { sleepSync } from "../src/util/sleep";

/** The directory an inventory's stacks are synthesized into (one per inventory directory). */
export function stackHome(baseDir: string): string {
  return path.join(baseDir, ".binkube", "cdktf.out");
}

/** The working directory of an inventory's stack (Terraform runs there). */
export function stackDir(baseDir: string, name: string): string {
  return path.join(stackHome(baseDir), "stacks", name);
}

/**
 * A stack synthesized by an earlier binkube into the shared cdktf.out/stacks/ moves to its new
 * home with its `terraform init` (providers, lock file), so upgrading binkube re-initialises
 * nothing; the state never lived there (it is beside the inventory), so nothing is redeployed.
 */
export function adoptLegacyStack(sharedOutdir: string, name: string, baseDir: string): boolean {
  const old = path.join(sharedOutdir, "stacks", name);
  const dest = stackDir(baseDir, name);
  if (!fs.existsSync(old) || fs.existsSync(dest)) return false;
  // A move: cdktf prunes only directories the manifest does not name, and this one has the
  // stack's own name, so our cdktf command does not look for it again. (A concurrent synth of
  // another inventory may still be listing it as an orphan: docs/many-clusters.md.)
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  try {
    fs.renameSync(old, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
    fs.cpSync(old, dest, { recursive: true, verbatimSymlinks: true });
    fs.rmSync(old, { recursive: true, force: true });
  }
  return true;
}

interface Manifest {
  stacks: Record<string, { workingDirectory: string; synthesizedStackPath: string; stackMetadataPath?: string }>;
}

/** The inventory's own manifest with its paths made relative to the shared outdir. */
export function sharedManifest(sharedOutdir: string, home: string): string {
  const own = JSON.parse(fs.readFileSync(path.join(home, "manifest.json"), "utf8")) as Manifest;
  const rel = (p: string) => path.relative(sharedOutdir, path.join(home, p));
  for (const s of Object.values(own.stacks)) {
    s.workingDirectory = rel(s.workingDirectory);
    s.synthesizedStackPath = rel(s.synthesizedStackPath);
    if (s.stackMetadataPath) s.stackMetadataPath = rel(s.stackMetadataPath);
  }
  return JSON.stringify(own, null, 2);
}

interface ManifestHolder extends Holder {
  token: string;
  inventory: string;
}

const manifestLock = (sharedOutdir: string) => path.join(sharedOutdir, ".manifest.lock");

/**
 * Writes cdktf.out/manifest.json for this inventory and keeps other synths from rewriting it
 * until `owner` (the cdktf command) has read it. Waits for another inventory's synth to hand it
 * over (seconds: until its Terraform starts), saying so once.
 */
export function publishManifest(opts: { sharedOutdir: string; baseDir: string; stack: string; inventory: string; owner: Owner; say: (m: string) => void; waitMs?: number }): void {
  const { sharedOutdir, owner, say } = opts;
  const home = stackHome(opts.baseDir);
  fs.mkdirSync(sharedOutdir, { recursive: true });
  const lock = manifestLock(sharedOutdir);
  const token = crypto.randomBytes(8).toString("hex");
  const mine: ManifestHolder = { pid: process.pid, start: procStartTime(process.pid) ?? 0, token, inventory: opts.inventory };
  const deadline = Date.now() + (opts.waitMs ?? 180_000);
  let told = false;
  for (;;) {
    const held = claim(lock, mine);
    if (!held) break;
    if (Date.now() > deadline) throw new BinkubeError(`${lock} is still held by the synth of ${held.inventory} (pid ${held.pid}); if that cdktf command is stuck, stop it and retry`);
    if (!told) say(`waiting for the cdktf command of ${held.inventory} to read ${path.join(sharedOutdir, "manifest.json")} (another cluster synthesized just before this one)`);
    told = true;
    sleepSync(100);
  }
  try {
    writeFileAtomic(path.join(sharedOutdir, "manifest.json"), sharedManifest(sharedOutdir, home) + "\n");
  } catch (e) {
    release(lock, mine);
    throw e;
  }
  if (owner.pid === process.pid) {
    release(lock, mine); // no cdktf command above us: nobody else reads the shared manifest
    return;
  }
  // Hand the lock to a watcher that outlives this app: it frees the lock once the command has read the manifest.
  const watcher = spawn(process.execPath, [path.join(PACKAGE_ROOT, "bin", "manifest-release.cjs"), lock, token, String(owner.pid), String(owner.start), fs.realpathSync(stackDir(opts.baseDir, opts.stack))], { detached: true, stdio: "ignore", cwd: "/" });
  const wpid = watcher.pid;
  watcher.unref();
  const wstart = wpid ? procStartTime(wpid) : undefined;
  if (!wpid || wstart === undefined) {
    // no watcher: keep the lock ours (it frees itself when this app exits, a moment early)
    return;
  }
  writeFileAtomic(lock, JSON.stringify({ ...mine, pid: wpid, start: wstart }) + "\n", 0o600);
}

/** The stack directory of the inventory in `baseDir` (one per inventory directory), if synthesized. */
export function synthesizedStackDir(baseDir: string): string | undefined {
  const stacks = path.join(stackHome(baseDir), "stacks");
  const names = fs.existsSync(stacks) ? fs.readdirSync(stacks) : [];
  return names.length === 1 ? path.join(stacks, names[0]!) : undefined;
}
