// A bring-up step: which hosts it runs on, what it ships to each, and what it waits for.
// Steps know their files; the plan and the stack only combine them.
import { BinaryIndex } from "../binaries/source";
import { Host, Inventory } from "../inventory/types";
import type { EncryptionKeys } from "../pki/encryption";
import type { Pki } from "../pki/load";
import type { ExecOptions, ExecResult, FetchResult, SyncResult } from "../remote";

/** A step's name. STEPS (steps/index.ts) is the one list of them; its registry checks every dep names one. */
export type StepName = string;

/**
 * Steps the rest of binkube treats together, named here so no caller lists them:
 * - "control-plane": an upgrade finishes them on every master before any node restarts (plan.ts);
 *   an etcd restore stops their units first and starts them again after (etcd-restore.ts).
 * - "node-agent": on every node, watching the API: an etcd restore restarts their units (their
 *   watches predate the snapshot).
 * - "host-setup": the first step on every host; its instance applied means the host ran before
 *   (plan.ts: a node whose node-roll instances are missing from the state still rolls).
 */
export type StepGroup = "control-plane" | "node-agent" | "host-setup";

export interface PlannedFile {
  /** Absolute path on the host. */
  path: string;
  mode: number;
  /** Rendered content, or the name of a binary in the binary source. */
  content?: string;
  binary?: string;
  /** Holds a private key or token: never logged, written 0600 by render. */
  secret?: boolean;
  /**
   * Not read by the step's unit when it starts (CNI config and plugins, image archives, kubectl
   * and its kubeconfig: read on each use). A running process is stale when any other file of its
   * step is newer than its start (actions.applyUnit, `binkube check`); these never make it so.
   */
  live?: boolean;
  /** The file's owner on the host when not root (the step chowns it after the sync). */
  owner?: string;
}

export interface StepContext {
  inv: Inventory;
  pki: Pki;
  binaries: BinaryIndex;
  /** Hosts that left the inventory and still await removal (from the host ledger). */
  gone: Host[];
}

/**
 * A dependency on another step: on the same host, on every instance of it, or (for the step
 * itself) on its instance on the previous host, which makes restarts roll one host at a time.
 */
export interface StepDep {
  step: StepName;
  on: "same-host" | "all" | "previous-host";
  /** Why the edge exists (a registry error quotes it). */
  why: string;
  /**
   * The edge holds only once the step has been brought up (an instance of it is in the state):
   * on its first bring-up the step starts without waiting for that step, and its own gate waits
   * for what the edge stands for (the addons' manifests go in while the nodes join).
   */
  skipOnFirstBringUp?: true;
}

/** The commands a step sends to a host: the part of the SSH executor steps may use. */
export interface StepRemote {
  /** Runs a command; throws on a non-zero exit unless allowFail. */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Streams a host file home (checked against its sha256; no partial file on failure). */
  fetchFile(remotePath: string, localPath: string, opts?: { timeoutMs?: number }): Promise<FetchResult>;
}

/**
 * The narrow contract a step's run() gets: the inventory, its host, the files its instance
 * ships, and remote handles. Nothing else of the cluster (PKI, plan, binaries) reaches a step.
 */
export interface RunContext {
  inv: Inventory;
  host: Host;
  /** The files of this step's instance on this host, as the plan rendered them. */
  files: PlannedFile[];
  /**
   * When this deploy was planned, no instance of this step had ever been applied: it comes up
   * for the first time on every host at once (etcd: the members bootstrap a new cluster).
   */
  firstBringUp: boolean;
  remote: StepRemote;
  log: (line: string) => void;
  /** A line about this step on this host, prefixed with both (log.ts stepLines); a warning the same, marked WARNING. */
  note: (line: string) => void;
  warn: (line: string) => void;
  /** remote.exec on the step's host. */
  sh(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Uploads the instance's files (unchanged ones are skipped by sha256). */
  sync(): Promise<SyncResult>;
  /** Connection to the first master, where kubectl and admin.kubeconfig live. */
  controlPlane(): Promise<StepRemote>;
  /** Connection to another host of the cluster (opened once, closed with the context). */
  onHost(host: Host): Promise<StepRemote>;
  /** What a step keeps on the operator's side; nothing else there is a step's to read or write. */
  operator: OperatorSide;
}

/**
 * The operator's side of a deploy as steps see it (runner/operator-side.ts has the files): the
 * encryption keys synthesis wrote and the ones every apiserver was last rewritten with (bootstrap),
 * the host ledger (remove), and where etcd snapshots are kept (etcd).
 */
export interface OperatorSide {
  encryptionKeys(): EncryptionKeys | undefined;
  /** The key names, comma-separated, Secrets were last rewritten with (undefined: never). */
  appliedEncryptionKeys(): string | undefined;
  recordAppliedEncryptionKeys(names: string): void;
  /** A removed host leaves the ledger once its removal ran. */
  forgetHost(name: string): void;
  /** The directory (created, 0700) a member's snapshots are kept in on this side. */
  snapshotsHome(host: string): string;
  /** Keeps the newest `keep` snapshots of the host on this side; returns the removed files. */
  rotateSnapshots(host: string, keep: number): string[];
  /** When the running cdktf command took the inventory's deploy lock (epoch ms); undefined with no live holder. */
  deployStartedAt(): number | undefined;
  /** Step runs that failed at or after `since` (epoch ms), from steps.log. */
  failedRunsSince(since: number): { step: string; host: string }[];
}

export interface StepDef {
  name: StepName;
  /** "host": one instance per matching host. "once": one instance, run on `hosts()[0]`. */
  scope: "host" | "once";
  description: string;
  hosts(inv: Inventory, gone: Host[]): Host[];
  /** Steps this one runs after; the registry orders STEPS by them (steps/registry.ts). */
  deps: StepDep[];
  group?: StepGroup;
  files(ctx: StepContext, host: Host): PlannedFile[];
  /**
   * The binaries its files ship, by name in the binary source: for a group ("docker/", "cni/",
   * "haproxy/") its required members, the rest of the group ships as found.
   */
  binaries?: readonly string[];
  /** The leaf certificates (pki/catalog.ts names) its files on `host` carry, in kubeconfigs or as PEM files. */
  certificates?(inv: Inventory, host: Host): string[];
  /**
   * The systemd units the step installs and starts on its host: every file of the instance but
   * `live` ones is read by them at start (what `binkube check` compares with their start time).
   */
  units?: string[];
  /**
   * Oneshot services the step's timers start (not running between runs): `binkube check` reports
   * one whose last run failed.
   */
  jobs?: string[];
  /** Binaries the step runs on its host without shipping them (another step on that host does). */
  usesBinaries?: string[];
  /** Inputs that are not files but must re-run the step when they change (never secrets). */
  triggers?(ctx: StepContext, host: Host): Record<string, string>;
  /**
   * New instances of a step that rolls ("previous-host") run in parallel, unless the step joins
   * an existing cluster one host at a time: then, while instances of it already run, new ones chain too.
   */
  serialJoin?: boolean;
  /**
   * Restarts what runs on a node (docker, kubelet, kube-proxy). Where these steps ran before,
   * changes roll rolling.maxUnavailable nodes at a time, after the control plane (plan.ts).
   */
  nodeRoll?: boolean;
  /**
   * "eager" (default): the runner connects to the step's host before run(), so an unreachable
   * host fails fast. "lazy": run() reaches its host only through rc.sh/rc.remote, on first use,
   * with one attempt (host removal: the host may be dead, which is often why it is removed).
   */
  connect?: "eager" | "lazy";
  /** The remote procedure, ending with the step's health gate. Returns a short summary. */
  run(rc: RunContext): Promise<string>;
}
