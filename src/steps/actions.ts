// Remote building blocks shared by steps: systemd units, kubectl on the first master, journal
// tails for error messages.
import { GateError, waitFor } from "../util/wait";
import { K8S } from "./files";
import { shq } from "../remote/shell";
import { VERSIONED, versionProblem } from "../binaries/release";
import type { RunContext, StepRemote } from "./types";
import { RemoteError } from "../remote/errors";
import { clock } from "../util/clock";
import { UnitProbe, describeStale, parseUnitProbe, readAtStart, unitProbeScript } from "./unit-probe";

/** One unit's probe on the step's host: its state, and the files it reads that changed after it started. */
export async function probeUnit(rc: RunContext, unit: string): Promise<UnitProbe> {
  const units = [{ unit, paths: readAtStart(rc.files) }];
  return parseUnitProbe((await rc.sh(unitProbeScript(units))).stdout, units).get(unit)!;
}

/**
 * daemon-reload, enable, and (re)start. Restarts when the step changed files, when the unit
 * failed, or when its running process is older than a file it reads (a run stopped between the
 * upload and the restart, a file placed by hand): a re-run always leaves the process current.
 * `currentWith`: files this run replaced that the running process needs no restart for (etcd's
 * bootstrap peer list); they are dated back to the process's start, so they stop counting as newer.
 */
export async function applyUnit(
  rc: RunContext,
  unit: string,
  changed: boolean,
  opts: { noBlock?: boolean; probe?: UnitProbe; currentWith?: string[] } = {},
): Promise<string> {
  const probe = opts.probe ?? (await probeUnit(rc, unit));
  const current = new Set(opts.currentWith ?? []);
  const stale = probe.stale.filter((s) => !current.has(s.path));
  if (current.size > 0 && probe.startedAt !== undefined) {
    const dated = probe.stale.filter((s) => current.has(s.path)).map((s) => shq(s.path));
    if (dated.length > 0) await rc.sh(`touch -m -d @${probe.startedAt} -- ${dated.join(" ")}`);
  }
  const state = probe.active;
  const verb = changed || state === "failed" || stale.length > 0 ? "restart" : "start";
  await rc.sh(`systemctl daemon-reload && systemctl enable --quiet ${unit} && systemctl ${verb} ${opts.noBlock ? "--no-block " : ""}${unit}`, {
    timeoutMs: 150_000,
  }).catch(async (e: Error) => {
    throw new GateError(`systemctl ${verb} ${unit} failed: ${e.message}\n${await journalTail(rc, unit)}`);
  });
  if (verb === "restart") {
    const why = !changed && state !== "failed" ? ` (it was older than its files: ${describeStale({ ...probe, stale })})` : "";
    return state === "active" || state === "activating" ? `${unit} restarted${why}` : `${unit} started`;
  }
  return state === "active" ? `${unit} running` : `${unit} started`;
}

/** Runs a health gate; when it fails, the error carries the unit's last journal lines. */
export async function gateWithJournal(rc: RunContext, unit: string, gate: () => Promise<void>): Promise<void> {
  try {
    await gate();
  } catch (e) {
    throw new GateError(`${(e as Error).message}\n${await journalTail(rc, unit)}`);
  }
}

/**
 * A fatal line in a unit's journal: etcd's capnslog critical (`C | etcdmain: …`) or zap fatal /
 * panic, klog's `F1204 …` of the Kubernetes components, a Go panic. Why a unit died is often
 * said once, before the restarts that fill the last lines with start-up noise.
 */
export const FATAL_LINE = /(^|\s)C \| |"level":"(fatal|panic)"|^F\d{4} |^panic: |\bfatal error\b/;

/** The unit's last journal lines; its last fatal line first when that is older than them. */
export async function journalTail(rc: RunContext, unit: string, lines = 15): Promise<string> {
  const r = await rc.sh(`journalctl -u ${unit} -n 300 --no-pager -o cat 2>/dev/null || true`, { allowFail: true });
  const all = r.stdout.trimEnd().split("\n");
  const tail = all.slice(-lines);
  const fatal = [...all].reverse().find((l) => FATAL_LINE.test(l));
  const head = fatal !== undefined && !tail.includes(fatal) ? `${unit}'s last fatal line on ${rc.host.name}:\n    ${fatal.trim()}\n` : "";
  return `${head}last ${lines} lines of journalctl -u ${unit} on ${rc.host.name}:\n${tail.join("\n").trim().replace(/^/gm, "    ")}`;
}

/**
 * Waits until the unit is active and stays active (no crash loop) for 3 s. `notifyReady`: the
 * unit is Type=notify and signals READY only once it serves (etcd: after it joined a quorum),
 * so "active" is proof enough and the step ends at once; the 3 s watch remains for the
 * "activating" state that allowActivating accepts (a member waiting for its peers), and a
 * restart counted by systemd in that time starts the watch over.
 * `serves`: the unit's own proof that its start-up is over (kube-proxy: a first rule sync, which
 * comes after every start-up step that can fail); active with that proof ends the watch at once too.
 */
export async function waitActive(
  rc: RunContext,
  unit: string,
  opts: { timeoutMs?: number; allowActivating?: boolean; notifyReady?: boolean; serves?: () => Promise<boolean> } = {},
): Promise<void> {
  const quick = opts.notifyReady === true || opts.serves !== undefined;
  let activeSince = 0;
  let restarts: string | undefined;
  await gateWithJournal(rc, unit, () =>
    waitFor(
      `${unit} active on ${rc.host.name}`,
      async () => {
        const out = (await rc.sh(`systemctl show -p ActiveState -p NRestarts ${unit}`)).stdout;
        const state = /ActiveState=(\S+)/.exec(out)?.[1] ?? "unknown";
        const nRestarts = /NRestarts=(\S+)/.exec(out)?.[1];
        const ok = state === "active" || (opts.allowActivating === true && state === "activating");
        if (state === "failed") throw new GateError(`${unit} failed`);
        if (!ok || (restarts !== undefined && nRestarts !== restarts)) {
          activeSince = 0;
          restarts = nRestarts;
          return ok ? `${state}, restarted` : state;
        }
        restarts = nRestarts;
        if (state === "active" && opts.notifyReady === true) return true;
        // a proof that cannot be read (the probe failed) is no proof: the watch decides
        if (state === "active" && opts.serves !== undefined && (await opts.serves().catch(() => false))) return true;
        activeSince ||= clock().now();
        return clock().now() - activeSince >= 3000 ? true : `${state}, watching for restarts`;
      },
      { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: quick ? 250 : 1000, log: rc.log, fix: `check the unit with journalctl -u ${unit} on ${rc.host.name}` },
    ),
  );
}

/**
 * The unit's crash-loop watch (waitActive) and its health gate, run together: the gate takes
 * seconds anyway, and one after the other the 3 s watch sat on every deploy's critical path
 * once per step. Both must pass; the first to fail fails the step, with the unit's journal.
 */
export async function activeAndHealthy(rc: RunContext, unit: string, opts: { timeoutMs?: number }, gate: () => Promise<void>): Promise<void> {
  await Promise.all([waitActive(rc, unit, opts), gateWithJournal(rc, unit, gate)]);
}

export const KUBECTL = `${K8S.bin}/kubectl --kubeconfig ${K8S.cfg}/admin.kubeconfig`;

/**
 * etcd errors the apiserver passes through while etcd elects a leader (a first bring-up on a busy
 * machine, a member's restart): the write did not happen, and the same apply again is safe.
 */
const ETCD_TRANSIENT = /etcdserver: (leader changed|request timed out)/;

/**
 * `kubectl apply ARGS` on the first master, again after an etcd election error (up to 3 tries, 2 s
 * apart; apply is idempotent). Any other failure, or the third, throws as exec does. A CI deploy
 * once failed its bootstrap step on "etcdserver: leader changed".
 */
export async function kubectlApply(remote: StepRemote, args: string, opts: { stdin?: string } = {}): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await remote.exec(`${KUBECTL} apply ${args}`, opts);
      return;
    } catch (e) {
      if (attempt >= 3 || !(e instanceof RemoteError) || !ETCD_TRANSIENT.test(e.stderr ?? "")) throw e;
      await clock().sleep(2000);
    }
  }
}

export async function kubectl(remote: StepRemote, args: string, opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<string> {
  const r = await remote.exec(`${KUBECTL} ${args}`, { allowFail: opts.allowFail, timeoutMs: opts.timeoutMs ?? 60_000 });
  return r.code === 0 ? r.stdout : "";
}

/** The node joined the cluster before (its kubelet holds a client certificate): it may run pods. */
export async function hasJoined(rc: RunContext): Promise<boolean> {
  return (await rc.sh(`test -s ${K8S.cfg}/kubelet.kubeconfig && echo joined || true`)).stdout.includes("joined");
}

/** The node's Ready condition as the API reports it: "True", "False", "Unknown", or "" when it is not registered. */
export async function nodeReadyStatus(control: StepRemote, node: string): Promise<string> {
  return (await kubectl(control, `get node ${shq(node)} -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}'`, { allowFail: true })).trim();
}

/**
 * A binary the step just shipped (at `path` on the host; its name in the binary source) is the
 * release the inventory names, checked on the host before its unit restarts (the old process keeps
 * running). The runner checks the same before connecting when the operator's machine can run the
 * binaries (binaries/release.ts). `libDir`: where the libraries binkube ships beside it are.
 */
export async function checkReleaseVersion(rc: RunContext, binaryName: string, path = `${K8S.bin}/${binaryName}`, libDir?: string): Promise<void> {
  const v = VERSIONED[binaryName];
  if (!v) throw new Error(`no version check for ${binaryName}`);
  const loader = libDir !== undefined ? `LD_LIBRARY_PATH=${shq(libDir)} ` : "";
  const r = await rc.sh(`${loader}${shq(path)} ${v.args.join(" ")} 2>&1 | head -n3`, { allowFail: true });
  const problem = versionProblem(binaryName, `${path} on ${rc.host.name}`, r.stdout, rc.inv);
  if (problem) throw new GateError(problem.replace("nothing was changed", `${binaryName.split("/").pop()} was not restarted`));
}
