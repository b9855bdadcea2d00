// Holds cdktf.out/manifest.json's lock for one synth until its cdktf command has read the
// manifest (stacks/stack-home.ts): the command has read it once it runs Terraform in the stack's
// directory, or once it has exited (`cdktf synth`). Started detached by the cdktf app; node's own
// modules only. Gives up after 120 s, so a command that hangs elsewhere cannot block others long.
//
//   node bin/manifest-release.cjs LOCKFILE TOKEN CLI_PID CLI_START STACK_DIR
"use strict";
const fs = require("node:fs");

const [lockFile, token, cliPidS, cliStartS, stackDir] = process.argv.slice(2);
const cliPid = Number(cliPidS);
const cliStart = Number(cliStartS);

function stat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { state: f[0], ppid: Number(f[1]), start: Number(f[19]) };
  } catch {
    return undefined;
  }
}

function cliAlive() {
  const s = stat(cliPid);
  return !!s && s.state !== "Z" && s.start === cliStart;
}

/**
 * A process under the CLI working in the stack's directory that is not node: Terraform (or a
 * shell it runs), so the manifest was read. Node processes there do not count: the step server
 * the app prestarts works in the stack's directory before the CLI has read anything.
 */
function terraformStarted() {
  let pids;
  try {
    pids = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number);
  } catch {
    return false;
  }
  for (const pid of pids) {
    let cwd;
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      continue;
    }
    if (cwd !== stackDir) continue;
    let exe = "";
    try {
      exe = fs.readlinkSync(`/proc/${pid}/exe`);
    } catch {
      continue;
    }
    if (/(^|\/)node[^/]*$/.test(exe)) continue;
    for (let p = pid, hops = 0; p > 1 && hops < 10; hops++) {
      const s = stat(p);
      if (!s) break;
      if (s.ppid === cliPid) return true;
      p = s.ppid;
    }
  }
  return false;
}

function release() {
  try {
    const held = JSON.parse(fs.readFileSync(lockFile, "utf8"));
    if (held.token === token) fs.rmSync(lockFile, { force: true });
  } catch {}
  process.exit(0);
}

const deadline = Date.now() + 120_000;
(function poll() {
  if (!cliAlive() || terraformStarted() || Date.now() > deadline) release();
  setTimeout(poll, 50);
})();
