/**
 * What a file sync needs of the host-to-host relay (peer-relay.ts implements it). A leaf module:
 * the sync imports only these types, so the relay may use RemoteHost without an import cycle.
 */
import type { ExecResult, SshTarget } from "./types";

/** Smaller files are not worth a listener, a connection and a hash: they go from the operator. */
export const PEER_MIN_BYTES = 1 << 20;

/** A file a sync must transfer, as the relay sees it: content by hash, never by name alone. */
export interface RelayFile {
  sha256: string;
  size: number;
  /** the target path on the receiver */
  path: string;
  /** where other hosts keep this content, when not at `path` (a staged copy: where its steps put it) */
  usualPath?: string;
}

/** The host a sync runs on, as the relay needs it: to run the copy there, and to serve from it later. */
export interface PeerReceiver {
  target: SshTarget;
  /** run `command` on the receiver over the sync's own connection (as root when the target uses sudo) */
  run(command: string, opts: { stdin: string; timeoutMs: number }): Promise<ExecResult>;
  /** runs one copy when the receiver's connection has a channel for it (sshd allows 10 sessions per connection) */
  channels<T>(task: () => Promise<T>): Promise<T>;
  log(line: string): void;
}

/** The first host to need a content uploads it from the operator and then reports where it sits. */
export interface UploadLease {
  /** the content is complete (and fsync'ed) at the first of `paths` that exists on the receiver */
  uploaded(paths: string[]): void;
  /** the upload failed: the next host that needs the content uploads it */
  failed(): void;
}

export type PeerOutcome =
  /** the content is at `temp` on the receiver, its sha256 checked there */
  | { kind: "copied"; from: string; bytes: number }
  /** send it from the operator; `fallback` says why when a copy was tried and failed */
  | { kind: "upload"; lease: UploadLease; fallback?: string };

export interface PeerSource {
  /**
   * Bring `file` into `temp` (created 0600, fsync'ed) on the receiver from another host, or say to
   * upload it. `background`: staging ahead of the steps (runner/stage.ts), whose uploads take the
   * operator's link one at a time so a step's own upload never shares it with more than one.
   */
  obtain(receiver: PeerReceiver, file: RelayFile, temp: string, opts?: { background?: boolean }): Promise<PeerOutcome>;
}

/** The sync option that hands a sync the deploy's relay (kept here, so types.ts needs no import of it). */
export interface PeerSyncOptions {
  /** where public files of PEER_MIN_BYTES or more may come from instead of the operator */
  peers?: PeerSource;
  /** a staging sync (runner/stage.ts): its uploads yield the operator's link to the steps' */
  background?: boolean;
}
