// `binkube step …` through a step server (src/cli/step-server.ts): this client loads only node's
// own modules, asks the server of its environment to run the step, prints what the step prints
// and exits with its code. The first client of a deploy starts the server (detached, so
// Terraform's pipes never wait on it); it exits 15 s after its last request.
// Any trouble reaching a server falls back to running the step in this process, as before.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");
const { spawn } = require("node:child_process");

const ROOT = path.join(__dirname, "..");

/** Variables cdktf sets for its app only (seen in a real deploy): Terraform's steps never have them. */
const appOnly = (name) => name.startsWith("CDKTF_") || name === "SYNTH_HCL_OUTPUT";

/**
 * Variables that differ between cdktf's app and Terraform's local-exec and that no step reads
 * (the app's own, Terraform's user agent, the shell's directories, and TF_VAR_*, which cdktf
 * withholds from the app): left out of the server's name, so the app can start the deploy's
 * server before Terraform runs its first step (prestart).
 */
const unkeyed = (name) => appOnly(name) || name.startsWith("TF_VAR_") || ["TF_APPEND_USER_AGENT", "PWD", "OLDPWD"].includes(name);

/**
 * The server this client may use: one per build of binkube, environment and working directory,
 * since a step reads process.env (PG_CONN_STR, BINKUBE_*) and resolves paths against the cwd.
 * Undefined when no server can be used safely.
 */
function serverPaths(distIsFresh, env = process.env, cwd = process.cwd()) {
  if (env.BINKUBE_STEP_SERVER === "0" || process.platform === "win32" || !distIsFresh(ROOT)) return undefined;
  const uid = process.getuid();
  // os.tmpdir() as the environment given would have it (the app names the steps' server)
  const tmp = (env.TMPDIR || env.TMP || env.TEMP || "/tmp").replace(/(.)\/+$/, "$1");
  const dir = path.join(tmp, `binkube-${uid}`);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if (e.code !== "EEXIST") return undefined;
  }
  // Only a directory of our own that nobody else can write: another local user must not be able
  // to put a socket here that answers our steps.
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) return undefined;
  const build = fs.statSync(path.join(ROOT, "dist", ".sources.json"));
  const keyed = Object.entries(env)
    .filter(([name]) => !unkeyed(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const key = crypto
    .createHash("sha256")
    .update(JSON.stringify([process.execPath, ROOT, `${build.size}:${build.mtimeMs}`, cwd, keyed]))
    .digest("hex")
    .slice(0, 20);
  const base = path.join(dir, key);
  return { socket: `${base}.sock`, lock: `${base}.spawn`, log: `${base}.log` };
}

/**
 * One request: resolves to the step's exit code, or to undefined when no server answered at
 * all (none listening, or it closed the connection before a single frame: nothing ran).
 * `refused` learns whether a socket was there with nobody listening (a server that died).
 */
function request(p, argv, refused = {}) {
  return new Promise((resolve) => {
    let answered = false;
    let exit;
    let buf = "";
    const sock = net.connect(p.socket);
    sock.on("connect", () => sock.write(`${JSON.stringify({ argv, bootMs: performance.now() })}\n`));
    sock.on("data", (chunk) => {
      answered = true;
      buf += chunk.toString("utf8");
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        let frame;
        try {
          frame = JSON.parse(buf.slice(0, nl));
        } catch {
          sock.destroy(); // not a step server's answer: reported below as a server that ended
          return;
        }
        buf = buf.slice(nl + 1);
        if (typeof frame.err === "string") process.stderr.write(frame.err);
        if (typeof frame.exit === "number") exit = frame.exit;
      }
    });
    sock.on("error", (e) => (refused.stale = e.code === "ECONNREFUSED"));
    sock.on("close", () => {
      if (!answered) return resolve(undefined);
      if (exit === undefined) {
        process.stderr.write(`binkube: step ${argv.slice(0, 3).join(" ")}: the step server ended before the step did; its log: ${p.log}. Fix: re-run \`npx cdktf deploy\` (a step is safe to re-run), or set BINKUBE_STEP_SERVER=0 to run each step in its own process\n`);
        return resolve(1);
      }
      resolve(exit);
    });
  });
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/**
 * Starts a server unless another client is starting one (the spawn lock; stale locks expire) or
 * one is already listening: a server renames its socket into place before it frees the lock, so
 * a socket found under the lock is a live server, unless a request was just refused there.
 */
function startServer(p, env = process.env, cwd = process.cwd(), staleSocket = false) {
  try {
    fs.writeFileSync(p.lock, String(process.pid), { flag: "wx", mode: 0o600 });
  } catch {
    try {
      if (Date.now() - fs.statSync(p.lock).mtimeMs > 10_000) fs.rmSync(p.lock, { force: true });
    } catch {
      /* the starter finished meanwhile */
    }
    return;
  }
  if (!staleSocket && fs.existsSync(p.socket)) {
    fs.rmSync(p.lock, { force: true }); // it came up while this client was between two tries
    return;
  }
  const log = fs.openSync(p.log, "w", 0o600);
  const child = spawn(process.execPath, [path.join(ROOT, "bin", "binkube.cjs"), "step-server", "--socket", p.socket, "--spawn-lock", p.lock], {
    detached: true,
    stdio: ["ignore", log, log],
    env,
    cwd,
  });
  child.on("error", () => fs.rmSync(p.lock, { force: true }));
  child.unref();
  fs.closeSync(log);
}

/** Runs `binkube step ARGV` on a server; undefined when none could be reached in time. */
async function viaServer(argv, distIsFresh) {
  const p = serverPaths(distIsFresh);
  if (!p) {
    // Said, not silent: without the server a deploy has no host-to-host copies and no staging.
    if (process.env.BINKUBE_STEP_SERVER !== "0" && !distIsFresh(ROOT)) {
      process.stderr.write(`binkube: step ${argv.slice(0, 3).join(" ")}: dist/ is older than the sources, so this step runs in its own process from the sources, without the step server (no copies between hosts, no staging). Fix: npm run build\n`);
    }
    return undefined;
  }
  const deadline = Date.now() + 15_000;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const refused = {};
    const code = await request(p, argv, refused);
    if (code !== undefined) return code;
    if (attempt === 0 || attempt % 40 === 0) startServer(p, process.env, process.cwd(), refused.stale === true);
    await sleep(25);
  }
  return undefined;
}

async function main() {
  const argv = process.argv.slice(3); // after "step"
  const { distIsFresh, load } = require("./entry.cjs");
  if (argv.includes("--help")) return load("src/cli/main"); // the CLI's own usage text
  let code;
  try {
    code = await viaServer(argv, distIsFresh);
  } catch {
    code = undefined;
  }
  if (code === undefined) return load("src/cli/main"); // in this process, as without a server
  process.exitCode = code;
}

/**
 * Called by the cdktf app once synthesis has planned new resources: starts the server the steps
 * of this deploy will ask for (Terraform runs them in STACK_DIR with the app's environment less
 * what cdktf set for the app), while Terraform initializes and plans, instead of on the first
 * step's critical path. Nothing happens if it is running, or if it cannot be named safely.
 */
function prestart(stackDir, env = process.env) {
  const tfEnv = Object.fromEntries(Object.entries(env).filter(([name]) => !appOnly(name)));
  tfEnv.PWD = stackDir;
  // cdktf gives the app NODE_OPTIONS=--max-old-space-size=4096 when the operator set none
  if (tfEnv.NODE_OPTIONS === "--max-old-space-size=4096") delete tfEnv.NODE_OPTIONS;
  const p = serverPaths(require("./entry.cjs").distIsFresh, tfEnv, stackDir);
  if (!p || fs.existsSync(p.socket)) return false;
  startServer(p, tfEnv, stackDir);
  return true;
}

module.exports = { main, serverPaths, prestart };
