/** The remote executor: verified SSH (node-ssh), checked commands, atomic idempotent file sync. */
export { RemoteHost, DEFAULT_EXEC_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_RETRIES } from "./host";
export { RemoteError } from "./errors";
export { fingerprint, knownHostsName, parseKnownHosts, hostFieldMatches } from "./hostkeys";
export { shq, sudoWrap } from "./shell";
export { PeerRelay } from "./peer-relay";
export { PEER_MIN_BYTES, type PeerSource, type PeerSyncOptions } from "./peer-source";
export type {
  SshTarget,
  ExecResult,
  FetchResult,
  FileToShip,
  ConnectOptions,
  ExecOptions,
  SyncOptions,
  SyncResult,
  RemoteErrorKind,
} from "./types";
