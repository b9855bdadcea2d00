// The kubelet's flags file and config file, and what binkube sets through them. The kubelet step
// ships these; the inventory checks kubelet.extraArgs against kubeletWrites() (inventory/extra-args.ts),
// so a flag or field added to a template is protected from an override the moment it is written.
import { parse } from "yaml";
import { K8S, templated } from "./files";
import { CGROUP_DRIVER, KubeletRuntime, kubeletRuntime } from "./runtime-contract";
import { TLS_CIPHER_SUITES } from "./tls";
import { PlannedFile } from "./types";
import { RUNTIMES, type Inventory } from "../inventory/types";


export interface KubeletFlagsInput {
  name: string;
  address: string;
  /** The runtime's flags and (dockershim) pause image: runtime-contract.ts kubeletRuntime(). */
  runtime: KubeletRuntime;
  /** key=value,… or "" (then no --node-labels). */
  nodeLabels: string;
  extraArgs: Record<string, string>;
}

export const kubeletConf = ({ runtime, ...v }: KubeletFlagsInput): PlannedFile =>
  templated(`${K8S.cfg}/kubelet.conf`, "kubelet/kubelet.conf", { ...v, runtimeFlags: runtime.flags, pauseImage: runtime.pauseImage ?? "" });

export const kubeletConfig = (v: { clusterDNS: string; clusterDomain: string; failSwapOn: boolean }): PlannedFile =>
  templated(`${K8S.cfg}/kubelet-config.yml`, "kubelet/kubelet-config.yml", { cgroupDriver: CGROUP_DRIVER, cipherSuites: TLS_CIPHER_SUITES, ...v });

/** What binkube writes for a component: the flags on its command line and the field paths of its config file. */
export interface Writes {
  flags: Set<string>;
  /** Dotted paths of every leaf in the config file (`authentication.anonymous.enabled`, `evictionHard.memory.available`). */
  config: Set<string>;
}

/** Flag names in a flags file (`--name=value`). */
export const flagsIn = (text: string): Set<string> => new Set([...text.matchAll(/(?:^|[\s"])--([a-z0-9][a-z0-9-]*)=/g)].map((m) => m[1]!));

function leafPaths(v: unknown, at: string, out: Set<string>): Set<string> {
  if (v !== null && typeof v === "object" && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) leafPaths(x, at ? `${at}.${k}` : k, out);
  else out.add(at);
  return out;
}

let writes: Writes | undefined;
/**
 * What binkube sets on every kubelet, whatever the inventory says: rendered with every optional
 * part present (labels) and for every runtime (a flag one runtime sets stays binkube's with the
 * other), and with no extraArgs (those are what is being checked).
 */
export function kubeletWrites(): Writes {
  const flagsWith = (runtime: Inventory["runtime"]) =>
    flagsIn(kubeletConf({ name: "node", address: "192.0.2.1", runtime: kubeletRuntime({ runtime, images: { pause: "pause:3.1" } }), nodeLabels: "a=b", extraArgs: {} }).content!);
  writes ??= {
    flags: new Set(RUNTIMES.flatMap((runtime) => [...flagsWith(runtime)])),
    config: leafPaths(parse(kubeletConfig({ clusterDNS: "10.0.0.2", clusterDomain: "cluster.local", failSwapOn: true }).content!), "", new Set()),
  };
  return writes;
}
