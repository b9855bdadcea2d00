// The plan: every (step, host) instance in bring-up order with the exact files it ships and a
// content hash over them. Terraform triggers are these hashes, so a step re-runs when, and only
// when, something it ships changes.
import { sha256 } from "./util/hash";
import { Host, Inventory } from "./inventory/types";
import { STEPS, stepsInGroup } from "./steps";
import { PemPair, refsIn, resolveRefs } from "./pki/refs";
import { PlannedFile, StepContext, StepDef, StepName } from "./steps/types";

/** Bump when a step's remote procedure changes in a way that must re-run it everywhere. */
export const RECIPE_VERSION = "1";

export interface StepInstance {
  step: StepName;
  host: Host;
  /** Terraform resource id: "etcd_lab1", or "addons" for once-steps. */
  id: string;
  /** Leaf certificates in them are references (pki/refs.ts): shippedFiles resolves them. */
  files: PlannedFile[];
  /** Trigger map: one entry per shipped file (path → content hash) plus extra inputs. No secrets. */
  triggers: Record<string, string>;
  /** One hash over all triggers. */
  hash: string;
  dependsOn: string[];
  /**
   * No instance of this step is in the Terraform state: this deploy brings the step up for the
   * first time everywhere (all its instances start together; etcd: a new cluster, nothing to
   * join). Passed to the step process as --first-bring-up; never a trigger (it changes after
   * the first apply, which must not replace anything).
   */
  firstBringUp: boolean;
}

export interface Plan {
  inv: Inventory;
  instances: StepInstance[];
  /** How many instances Terraform has not applied yet (all of them on a first deploy). */
  newInstances: number;
}

/**
 * Terraform resource id. Per-host: "etcd_lab1" (step and host with '-' as '_', so always an
 * '_' inside); once-steps: the step name as it is ("etcd-health", "addons": never an '_'). The two
 * forms cannot meet: an etcd host named "health" is etcd_health, the health gate etcd-health.
 */
export function resourceId(step: StepDef, host: Host): string {
  return step.scope === "once" ? step.name : `${step.name.replace(/-/g, "_")}_${host.name.replace(/-/g, "_")}`;
}

function fileHash(f: PlannedFile, ctx: PlanContext): string {
  const body = f.binary !== undefined ? `binary:${ctx.binaries.get(f.binary).hash}` : `sha256:${sha256(resolveRefs(f.content ?? "", ctx.leafIdentity))}`;
  return `${f.mode.toString(8)}:${body}`;
}

export function instanceHosts(step: StepDef, inv: Inventory, gone: Host[]): Host[] {
  const hosts = step.hosts(inv, gone);
  return step.scope === "once" ? hosts.slice(0, 1) : hosts;
}

/**
 * Hosts of a step in the order its instances chain (a step that depends on its own previous
 * host rolls one host at a time). Instances Terraform has not applied yet come first, so a new
 * master serves and a new etcd member joins before the existing ones restart for it. Applied
 * ones keep the order the state recorded: Terraform destroys replaced resources along the
 * recorded edges, so reversing an edge between two replaced instances would make a cycle.
 * Inventory order breaks ties (and is the whole order on a first deploy).
 */
function chainOrder(step: StepDef, hosts: Host[], applied: ReadonlyMap<string, string[]>): Host[] {
  if (!step.deps.some((d) => d.on === "previous-host" && d.step === step.name)) return hosts;
  const isNew = (h: Host) => !applied.has(resourceId(step, h));
  const old = hosts.filter((h) => !isNew(h));
  const recorded = new Map(old.map((h) => [h.name, new Set(applied.get(resourceId(step, h))!)]));
  return [...hosts.filter(isNew), ...recordedOrder(old, (h, o) => recorded.get(h.name)!.has(resourceId(step, o)))];
}

/**
 * Hosts in the order an earlier apply recorded (`after(h, o)`: h was recorded to wait for o).
 * Kahn's algorithm, taking the earliest ready host in inventory order each time. Edges recorded
 * by different applies agree (each apply follows the order recorded before it), so there is no
 * cycle (were there one, the first waiting host would go next).
 */
function recordedOrder(hosts: Host[], after: (h: Host, o: Host) => boolean): Host[] {
  const order: Host[] = [];
  const waiting = [...hosts];
  while (waiting.length > 0) {
    const idx = Math.max(0, waiting.findIndex((h) => !waiting.some((o) => o !== h && after(h, o))));
    order.push(...waiting.splice(idx, 1));
  }
  return order;
}

/**
 * The same-step instances each instance waits for ("previous-host" deps), over hosts in chain
 * order. Only what replaces a running service rolls: instances Terraform has not applied yet run
 * in parallel (a first etcd bootstrap starts every member together, as etcd expects; a new
 * master's control plane does not wait for the others), except for a step that joins an existing
 * cluster one host at a time (etcd member add: `serialJoin`), and only while the cluster exists.
 * Applied instances roll one by one after all new ones.
 */
function chainDeps(step: StepDef, ordered: Host[], applied: ReadonlyMap<string, string[]>): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  const id = (h: Host) => resourceId(step, h);
  const fresh = ordered.filter((h) => !applied.has(id(h)));
  const old = ordered.filter((h) => applied.has(id(h)));
  const serialNew = step.serialJoin === true && old.length > 0;
  fresh.forEach((h, i) => deps.set(h.name, serialNew && i > 0 ? [id(fresh[i - 1]!)] : []));
  old.forEach((h, i) => deps.set(h.name, i > 0 ? [id(old[i - 1]!)] : serialNew ? fresh.slice(-1).map(id) : fresh.map(id)));
  return deps;
}

/** rolling.maxUnavailable as a batch size over `nodes` nodes (a percentage rounds down, at least 1). */
export function batchSize(maxUnavailable: number | `${number}%`, nodes: number): number {
  if (typeof maxUnavailable === "number") return maxUnavailable;
  return Math.max(1, Math.floor((nodes * Number(maxUnavailable.slice(0, -1))) / 100));
}

/**
 * What each node's node-roll instances (docker, kubelet, kube-proxy: steps with `nodeRoll`) wait
 * for, by host name. Nodes where none of them was applied yet join in parallel, as on a first
 * deploy. The others restart in batches of rolling.maxUnavailable, in the order recorded before:
 * the first batch after the new nodes and the whole control plane (the version-skew order of an
 * upgrade), each next batch after every node-roll instance of the batch before (so a node's
 * docker, kubelet and kube-proxy all finish, gates included, before the next batch starts, and a
 * bad change stops at the first batch).
 */
function nodeRollDeps(ctx: StepContext, applied: ReadonlyMap<string, string[]>): Map<string, string[]> {
  const steps = STEPS.filter((s) => s.nodeRoll === true);
  const idsOn = new Map<string, string[]>();
  const nodes: Host[] = [];
  for (const s of steps) {
    for (const h of instanceHosts(s, ctx.inv, ctx.gone)) {
      if (!idsOn.has(h.name)) (idsOn.set(h.name, []), nodes.push(h));
      idsOn.get(h.name)!.push(resourceId(s, h));
    }
  }
  // A node that ran before: any of its node-roll instances is in the state, or its prepare
  // instance is. Terraform destroys replaced instances early in an apply, so one stopped at a
  // roll's first node leaves the later nodes' instances out of the state; the host-setup step
  // (prepare: rarely replaced) still says they run pods, and they keep rolling instead of restarting at once.
  const setup = stepsInGroup("host-setup");
  const isOld = (h: Host) => idsOn.get(h.name)!.some((id) => applied.has(id)) || setup.some((s) => applied.has(resourceId(s, h)));
  const fresh = nodes.filter((h) => !isOld(h));
  const recorded = (h: Host) => new Set(idsOn.get(h.name)!.flatMap((id) => applied.get(id) ?? []));
  const old = recordedOrder(nodes.filter(isOld), (h, o) => idsOn.get(o.name)!.some((id) => recorded(h).has(id)));
  // an upgrade finishes the control plane everywhere first: a kubelet is never newer than an apiserver
  const controlPlane = stepsInGroup("control-plane").flatMap((s) => instanceHosts(s, ctx.inv, ctx.gone).map((h) => resourceId(s, h)));
  const size = batchSize(ctx.inv.rolling.maxUnavailable, old.length);
  const deps = new Map<string, string[]>(fresh.map((h) => [h.name, []]));
  old.forEach((h, i) => {
    const batch = Math.floor(i / size);
    const before = batch === 0 ? [...fresh.flatMap((f) => idsOn.get(f.name)!), ...controlPlane] : old.slice((batch - 1) * size, batch * size).flatMap((p) => idsOn.get(p.name)!);
    deps.set(h.name, before);
  });
  return deps;
}

export interface PlanOptions {
  /** Resources in the Terraform state, with their recorded dependencies: they roll after new ones, in their recorded order. */
  applied?: ReadonlyMap<string, string[]>;
}

/** What the plan needs beyond a step's context: what identifies each leaf certificate (pki/load.ts LeafSource). */
export interface PlanContext extends StepContext {
  leafIdentity: (name: string) => PemPair;
}

/**
 * One instance's files, trigger map and hash: what its resource carries and its process ships,
 * rendered once. Files carry leaf certificates as references; triggers hash each file with its
 * references resolved to the leaves' identities (pki/issuance.ts), which issuance does not change.
 */
function renderInstance(ctx: PlanContext, step: StepDef, host: Host): Pick<StepInstance, "files" | "triggers" | "hash"> {
  const stepCtx: StepContext = { inv: ctx.inv, pki: ctx.pki, binaries: ctx.binaries, gone: ctx.gone };
  const files = step.files(stepCtx, host);
  const declared = new Set(step.certificates?.(ctx.inv, host) ?? []);
  const seen = new Set<string>();
  for (const f of files) {
    const where = `step ${step.name} on ${host.name}: ${f.path}`;
    if (seen.has(f.path)) throw new Error(`step ${step.name} on ${host.name} ships ${f.path} twice`);
    seen.add(f.path);
    if (f.content === undefined) continue;
    const refs = refsIn(f.content);
    for (const name of refs.names) if (!declared.has(name)) throw new Error(`${where} carries certificate ${name}, which the step does not declare (StepDef.certificates)`);
    // a key lands only in a secret file (0600, never logged)
    if (refs.keys.length > 0 && f.secret !== true) throw new Error(`${where}: carries the private key of ${refs.keys.join(", ")} but is not a secret file`);
  }
  const triggers: Record<string, string> = { recipe: RECIPE_VERSION };
  for (const f of [...files].sort((a, b) => a.path.localeCompare(b.path))) triggers[f.path] = fileHash(f, ctx);
  for (const [k, v] of Object.entries(step.triggers?.(stepCtx, host) ?? {})) triggers[`input:${k}`] = v;
  const hash = sha256(JSON.stringify(triggers));
  return { files, triggers, hash };
}

/** The leaf certificates an instance's files reference. */
export function certificatesIn(files: PlannedFile[]): string[] {
  return [...new Set(files.flatMap((f) => (f.content === undefined ? [] : refsIn(f.content).names)))].sort();
}

/** Files as a host receives them: every leaf reference resolved through `leaf` (LeafSource.issued). */
export function shippedFiles(files: PlannedFile[], leaf: (name: string) => PemPair): PlannedFile[] {
  return files.map((f) => (f.content === undefined || refsIn(f.content).names.length === 0 ? f : { ...f, content: resolveRefs(f.content, leaf) }));
}

export function buildPlan(ctx: PlanContext, opts: PlanOptions = {}): Plan {
  const { inv } = ctx;
  const applied = opts.applied ?? new Map<string, string[]>();
  const instances: StepInstance[] = [];
  const idsByStep = new Map<StepName, Map<string, string>>(); // step → host name → id
  const rollDeps = nodeRollDeps(ctx, applied);
  for (const step of STEPS) {
    const ids = new Map<string, string>();
    idsByStep.set(step.name, ids);
    const ordered = chainOrder(step, instanceHosts(step, inv, ctx.gone), applied);
    const chain = chainDeps(step, ordered, applied);
    const firstBringUp = !ordered.some((h) => applied.has(resourceId(step, h)));
    for (const host of ordered) {
      const dependsOn = step.deps.filter((d) => !(firstBringUp && d.skipOnFirstBringUp)).flatMap((d) => {
        const depIds = idsByStep.get(d.step)!;
        if (d.on === "all") return [...depIds.values()];
        if (d.on === "previous-host") return chain.get(host.name)!;
        const same = depIds.get(host.name);
        return same ? [same] : [];
      });
      if (step.nodeRoll) dependsOn.push(...(rollDeps.get(host.name) ?? []).filter((d) => !dependsOn.includes(d)));
      const id = resourceId(step, host);
      ids.set(host.name, id);
      instances.push({ step: step.name, host, id, ...renderInstance(ctx, step, host), dependsOn, firstBringUp });
    }
  }
  const ids = new Set<string>();
  for (const inst of instances) {
    if (ids.has(inst.id)) throw new Error(`two step instances would share the resource id ${inst.id}`);
    ids.add(inst.id);
  }
  checkSharedPaths(instances);
  return { inv, instances: dependencyOrder(instances), newInstances: instances.filter((i) => !applied.has(i.id)).length };
}

/**
 * The instance of one step on one host, rendered alone (what a step process needs: no other
 * step's files, no graph). Undefined when the step does not run on that host.
 */
export function planInstance(ctx: PlanContext, step: StepDef, hostName: string): Omit<StepInstance, "dependsOn" | "firstBringUp"> | undefined {
  const host = instanceHosts(step, ctx.inv, ctx.gone).find((h) => h.name === hostName);
  if (!host) return undefined;
  return { step: step.name, host, id: resourceId(step, host), ...renderInstance(ctx, step, host) };
}

/**
 * Instances with every one after what it depends on (the stack creates resources in this order),
 * otherwise in bring-up order. Node-roll edges point from an early step (docker on one node) to
 * later ones (kube-proxy on the node before), so step order alone is not enough.
 */
function dependencyOrder(instances: StepInstance[]): StepInstance[] {
  const byId = new Map(instances.map((i) => [i.id, i]));
  const state = new Map<string, "visiting" | "done">();
  const out: StepInstance[] = [];
  // Depth first in bring-up order: an instance's dependencies are pulled in just before it.
  const visit = (i: StepInstance, path: string[]) => {
    if (state.get(i.id) === "done") return;
    if (state.get(i.id) === "visiting") throw new Error(`plan: a dependency cycle: ${[...path, i.id].join(" → ")}`);
    state.set(i.id, "visiting");
    for (const d of i.dependsOn) {
      const dep = byId.get(d);
      if (!dep) throw new Error(`plan: ${i.id} depends on ${d}, which the plan does not have`);
      visit(dep, [...path, i.id]);
    }
    state.set(i.id, "done");
    out.push(i);
  };
  for (const i of instances) visit(i, []);
  return out;
}

/** Two steps on one host may ship the same path (ca.pem) only with identical content. */
function checkSharedPaths(instances: StepInstance[]): void {
  const byHostPath = new Map<string, { step: string; hash: string }>();
  for (const inst of instances) {
    for (const f of inst.files) {
      const key = `${inst.host.name}:${f.path}`;
      const h = inst.triggers[f.path]!;
      const prev = byHostPath.get(key);
      if (prev && prev.hash !== h) throw new Error(`${inst.host.name}: steps ${prev.step} and ${inst.step} ship different contents to ${f.path}`);
      byHostPath.set(key, { step: inst.step, hash: h });
    }
  }
}


export function findInstance(plan: Plan, step: string, hostName?: string): StepInstance | undefined {
  return plan.instances.find((i) => i.step === step && (hostName === undefined || i.host.name === hostName));
}
