// The policy for a component's extraArgs (kubelet.extraArgs today; any component that takes them
// later gets the same): a flag must exist in the component's v1.17 flag set; a flag that sets what
// binkube writes itself is refused (the command line would silently win over the file); a flag
// that weakens authentication, authorization, TLS, admission or what the component runs is
// refused unless the inventory names it, with a reason, in <component>.weakened, and then every
// render and deploy warns about it. What binkube writes is read from its rendered templates
// (steps/kubelet-files.ts), not from a list kept here.
import { Reader, closest } from "./reader";
import { flagWord, shown } from "./grammar";
import { Weakened } from "./types";

export interface FlagPolicy {
  component: string;
  /** Every flag of the component's v1.17 release → the config-file field it sets, or null. */
  known: Readonly<Record<string, string | null>>;
  /** What binkube writes: flags on the command line, leaf paths of the config file. */
  writes: { flags: Set<string>; config: Set<string> };
  /** Flags that weaken the component whatever binkube writes, with what they undo and the CIS check that then fails. */
  weakening: Readonly<Record<string, { undoes: string; cis?: string }>>;
  /** Written by binkube as a starting value only (sized per cluster): a flag may set them. */
  tunable: readonly string[];
  /** Where a managed setting is changed instead, when the inventory has a field for it. */
  instead?: Readonly<Record<string, string>>;
}

/** The kubelet's: CIS Kubernetes Benchmark 1.6, section 4.2 (kube-bench cis-1.6). */
export const KUBELET_WEAKENING: FlagPolicy["weakening"] = {
  "anonymous-auth": { undoes: "anonymous requests reach the kubelet API", cis: "4.2.1" },
  "authorization-mode": { undoes: "the kubelet authorizes requests without asking the apiserver (AlwaysAllow: any authenticated identity, any pod's service-account token included, may exec into every pod)", cis: "4.2.2" },
  "client-ca-file": { undoes: "the kubelet trusts client certificates from another CA", cis: "4.2.3" },
  "read-only-port": { undoes: "pod specs and environments are served without authentication", cis: "4.2.4" },
  "streaming-connection-idle-timeout": { undoes: "exec and port-forward streams may stay open idle", cis: "4.2.5" },
  "protect-kernel-defaults": { undoes: "the kubelet runs on kernel settings other than its defaults", cis: "4.2.6" },
  "make-iptables-util-chains": { undoes: "the kubelet stops managing its iptables chains", cis: "4.2.7" },
  "tls-cert-file": { undoes: "the kubelet serves another certificate than the one binkube's CA issued for the node", cis: "4.2.10" },
  "tls-private-key-file": { undoes: "the kubelet serves with another key", cis: "4.2.10" },
  "rotate-certificates": { undoes: "the kubelet's client certificate is not rotated", cis: "4.2.11" },
  "rotate-server-certificates": { undoes: "the serving certificate comes from a CSR approved in the cluster instead of binkube's PKI", cis: "4.2.12" },
  "tls-cipher-suites": { undoes: "the kubelet accepts other (possibly weak) cipher suites", cis: "4.2.13" },
  "tls-min-version": { undoes: "the kubelet accepts older TLS versions" },
  "authentication-token-webhook": { undoes: "bearer tokens are no longer checked with the apiserver" },
  "manifest-url": { undoes: "the kubelet runs whatever that URL serves as static pods, outside admission and PodSecurityPolicy" },
  "manifest-url-header": { undoes: "headers (often credentials) sent to a static-pod URL" },
  "pod-manifest-path": { undoes: "the kubelet runs the pod files of a host directory as static pods, outside admission and PodSecurityPolicy" },
  "dynamic-config-dir": { undoes: "a ConfigMap in the cluster may replace the kubelet's hardened configuration" },
  "allowed-unsafe-sysctls": { undoes: "pods may set unsafe kernel parameters" },
  "redirect-container-streaming": { undoes: "exec and attach streams go from the apiserver to the container runtime directly, unauthenticated" },
  "container-runtime": { undoes: "pods run in another runtime than the docker binkube installs and checks" },
  "container-runtime-endpoint": { undoes: "pods run in another runtime than the docker binkube installs and checks" },
  "image-service-endpoint": { undoes: "images come from another runtime than the docker binkube installs and checks" },
  "docker-endpoint": { undoes: "the kubelet talks to another docker daemon (a tcp:// endpoint is unauthenticated root)" },
  "experimental-mounter-path": { undoes: "the kubelet runs another binary as root for every mount" },
  "volume-plugin-dir": { undoes: "the kubelet runs the FlexVolume drivers found in that directory as root" },
};

const CIS_NOTE = "docs/cis.md, \"Weakened settings\"";

/**
 * Checks `args` (the component's extraArgs) at `field` and `weakenedRaw` (its weakened list) at
 * `weakenedField`. Returns the accepted weakenings, each already reported as a warning.
 */
export function checkExtraArgs(r: Reader, field: string, args: Record<string, string>, weakenedField: string, weakenedRaw: unknown[], p: FlagPolicy): Weakened[] {
  const weakened = readWeakened(r, weakenedField, weakenedRaw);
  const named = new Map(weakened.map((w) => [w.flag, w]));
  const accepted: Weakened[] = [];
  for (const [flag, value] of Object.entries(args)) {
    const at = `${field}.${flag}`;
    if (!(flag in p.known)) {
      const guess = closest(flag, Object.keys(p.known));
      r.error(at, `--${shown(flag)} is not a ${p.component} v1.17 flag (it would stop the ${p.component} at its start)`, guess ? `did you mean "${guess}"?` : `see \`${p.component} --help\` of the v1.17 release for its flags`);
      continue;
    }
    const bad = flagWord(value);
    if (bad) {
      r.error(at, `"${shown(value)}" ${bad}`, `a ${p.component} flag value is one word: no spaces, quotes, backslashes or '$'`);
      continue;
    }
    const config = p.known[flag];
    const setsConfig = config !== null && [...p.writes.config].some((w) => w === config || w.startsWith(`${config}.`));
    const weak = p.weakening[flag];
    if (weak) {
      const w = named.get(flag);
      if (!w) {
        r.error(at, `--${flag}=${shown(value)} would weaken the ${p.component}: ${weak.undoes}${weak.cis ? ` (fails CIS ${weak.cis})` : ""}`, `remove it; if this cluster really needs it, also list it in ${weakenedField} as { flag: ${flag}, reason: "…" } (see ${CIS_NOTE})`);
        continue;
      }
      accepted.push({ flag: w.flag, reason: w.reason });
      r.warn(at, `--${flag}=${shown(value)} weakens the ${p.component}: ${weak.undoes}${weak.cis ? `; CIS ${weak.cis} fails` : ""} (accepted in ${weakenedField}: "${shown(w.reason)}")`, `remove it from ${field} and ${weakenedField} once the reason no longer holds`);
      continue;
    }
    if (p.writes.flags.has(flag) || (setsConfig && !p.tunable.includes(flag))) {
      const where = p.writes.flags.has(flag) ? `on its command line` : `in its config file (${config})`;
      r.error(at, `--${flag} is set by binkube ${where}; a second value would silently override it`, p.instead?.[flag] ?? `remove it: binkube writes it for every ${p.component} (templates/${p.component}/)`);
    }
  }
  for (const w of weakened) {
    if (!(w.flag in args)) r.error(`${weakenedField}[${w.index}].flag`, `${shown(w.flag)} is not in ${field}`, `remove the entry, or add the flag to ${field}`);
    else if (!p.weakening[w.flag]) r.error(`${weakenedField}[${w.index}].flag`, `--${shown(w.flag)} is not a setting that weakens the ${p.component}; ${weakenedField} is only for those`, "remove the entry");
  }
  return accepted;
}

function readWeakened(r: Reader, field: string, raw: unknown[]): (Weakened & { index: number })[] {
  return raw.flatMap((x, index) => {
    const at = `${field}[${index}]`;
    if (x === null || typeof x !== "object" || Array.isArray(x)) {
      r.error(at, "must be a mapping { flag, reason }", 'write - { flag: anonymous-auth, reason: "why this cluster needs it" }');
      return [];
    }
    const o = x as Record<string, unknown>;
    r.known(o, ["flag", "reason"], at);
    const flag = r.str(o, "flag", at, "");
    const reason = r.str(o, "reason", at, "").trim();
    if (!flag) r.error(`${at}.flag`, "is required", "name the flag, without dashes");
    if (reason.length < 10) r.error(`${at}.reason`, reason ? `"${shown(reason)}" is too short to say why` : "is required", "say in a sentence why this cluster needs the weaker setting (it is printed with every warning)");
    return flag && reason.length >= 10 ? [{ flag, reason, index }] : [];
  });
}
