// The grammars of the places an inventory value lands: each check returns undefined when the value
// fits, or the problem in a few words. load.ts calls these before anything is written; the render
// helpers (render/engine.ts) call the same ones again as a last guard, so a value that slipped past
// validation fails a render instead of becoming a flag, a unit line, a manifest key or a command.
import { isIPv4, ipToInt } from "../util/ip";

export type Check = (value: string) => string | undefined;

/** RFC 1123 label: a node name, a cluster name. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * A DNS name (RFC 1123 subdomain, at most 253 characters, labels at most 63). All-numeric last
 * labels are refused: `10.10.0.300` is a mistyped address, not a name.
 */
export const dnsName: Check = (v) => {
  if (v.length === 0 || v.length > 253) return `is ${v.length} characters long (a DNS name has 1 to 253)`;
  const labels = v.split(".");
  for (const l of labels) {
    if (l.length > 63) return `has a ${l.length}-character label (at most 63)`;
    if (!DNS_LABEL.test(l)) return `label "${l}" is not lower-case letters, digits and inner '-'`;
  }
  if (/^\d+$/.test(labels[labels.length - 1]!)) return "ends in an all-numeric label (a mistyped IPv4 address?)";
  return undefined;
};

/** A certificate SAN: an IPv4 address, a DNS name, or a wildcard `*.` followed by a DNS name of two or more labels. */
export const sanName: Check = (v) => {
  if (isIPv4(v)) return undefined;
  if (v.startsWith("*.")) {
    const rest = v.slice(2);
    const bad = dnsName(rest);
    if (bad) return `after "*." ${bad}`;
    return rest.includes(".") ? undefined : "a wildcard needs at least two labels after it (*.example.com)";
  }
  return dnsName(v);
};

/** Addresses a host can never have: unspecified, loopback, multicast, reserved, broadcast. */
export const hostAddress: Check = (v) => {
  if (!isIPv4(v)) return "is not an IPv4 address";
  const n = ipToInt(v);
  const first = n >>> 24;
  if (first === 0) return "is in 0.0.0.0/8 (unspecified: no host can be reached there)";
  if (first === 127) return "is a loopback address (every host would talk to itself)";
  if (n === 0xffffffff) return "is the broadcast address";
  if (first >= 224 && first <= 239) return "is a multicast address";
  if (first >= 240) return "is in the reserved range 240.0.0.0/4";
  return undefined;
};

/** Kubernetes label key: optional DNS-subdomain prefix and '/', then a name of at most 63 characters. */
export const labelKey: Check = (v) => {
  const slash = v.indexOf("/");
  const prefix = slash >= 0 ? v.slice(0, slash) : undefined;
  const name = slash >= 0 ? v.slice(slash + 1) : v;
  if (prefix !== undefined) {
    if (prefix.length > 253) return "has a prefix longer than 253 characters";
    if (!prefix.split(".").every((l) => DNS_LABEL.test(l))) return `prefix "${prefix}" is not a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63) return `name part is ${name.length} characters long (1 to 63)`;
  if (!/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(name)) return `name part "${name}" is not letters, digits and inner '-', '_', '.'`;
  return undefined;
};

/** Kubernetes label value: empty, or at most 63 letters, digits and inner '-', '_', '.'. */
export const labelValue: Check = (v) => {
  if (v.length > 63) return `is ${v.length} characters long (at most 63)`;
  if (v !== "" && !/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(v)) return "is not letters, digits and inner '-', '_', '.'";
  return undefined;
};

// kubelet v1.17 (pkg/kubelet/apis/well_known_labels.go): the only kubernetes.io / k8s.io labels a
// kubelet may set on itself; it refuses to start with any other (and NodeRestriction would too).
const KUBELET_LABELS = new Set([
  "kubernetes.io/hostname", "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
  "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
  "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
]);
const KUBELET_LABEL_NAMESPACES = ["kubelet.kubernetes.io", "node.kubernetes.io"];

/** A label the kubelet may set on its own node through --node-labels. */
export const kubeletLabel: Check = (k) => {
  const slash = k.indexOf("/");
  if (slash < 0) return undefined;
  const ns = k.slice(0, slash);
  const restricted = ["kubernetes.io", "k8s.io"].some((d) => ns === d || ns.endsWith(`.${d}`));
  if (!restricted || KUBELET_LABELS.has(k)) return undefined;
  if (KUBELET_LABEL_NAMESPACES.some((d) => ns === d || ns.endsWith(`.${d}`))) return undefined;
  if (ns === "node-role.kubernetes.io") return "is a node role, which a kubelet may not set on itself (NodeRestriction)";
  return `is in the reserved ${ns} namespace, which kubelet v1.17 refuses in --node-labels`;
};

// The image reference grammar of docker/distribution (reference/regexp.go).
// Its separator `[-]*` may be empty, which RE2 shrugs off but made a JavaScript backtracking
// explosion: `-+` is the same language, with every repetition starting at a separator.
const NAME_COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
const IMAGE_REF = new RegExp(`^((?:${DOMAIN}/)?${NAME_COMPONENT}(?:/${NAME_COMPONENT})*)(?::([\\w][\\w.-]{0,127}))?(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$`);

/** A docker image reference (name[:tag][@digest]). */
export const imageRef: Check = (v) => {
  if (v.length > 512) return `is ${v.length} characters long (an image reference has at most 255 for its name, 128 for its tag)`;
  const m = IMAGE_REF.exec(v);
  if (!m) return "is not an image reference (registry/name:tag, lower-case name, no spaces)";
  if (m[1]!.length > 255) return "has a name longer than 255 characters";
  return undefined;
};

/** A command-line flag name without its dashes. */
export const flagName: Check = (v) => (/^[a-z][a-z0-9-]*[a-z0-9]$/.test(v) ? undefined : "is not a flag name (lower-case letters, digits and '-', no leading dashes)");

/**
 * One word of a flags file (`KEY="--a=b \` lines read as an EnvironmentFile, then split on
 * whitespace by systemd for `$KEY`): no whitespace (would start a new flag), no quote, backslash
 * or `$` (systemd unquotes and expands those), printable ASCII only. Shell characters such as
 * `<`, `|` or `;` are inert here: no shell reads these files.
 */
export const flagWord: Check = (v) => {
  const bad = /[^!#%&()*+,\-./0-9:;<=>?@A-Z[\]^_a-z{|}~]/.exec(v);
  if (!bad) return undefined;
  return `contains ${describeChar(bad[0])}, which a systemd EnvironmentFile or flag list would ${/\s/.test(bad[0]) ? "split into another flag" : "reinterpret"}`;
};

/** A file name (no directory part) shipped to hosts and named in remote commands (quoted there). */
export const fileName: Check = (v) => {
  if (v === "" || v === "." || v === "..") return "is not a file name";
  if (v.includes("/")) return "contains '/'";
  if (v.includes("\\")) return "contains a backslash (sha256sum and the file sync cannot name it reliably)";
  if (v.startsWith("-")) return "starts with '-' (commands would read it as an option)";
  if (v.length > 255) return "is longer than 255 bytes";
  return undefined;
};

/** A binary's name in binkube's layout: `etcd`, `cni/bridge`, `docker/dockerd`. */
export const binaryName: Check = (v) => (/^(?:[a-z0-9][a-z0-9-]*\/)?[a-z0-9][a-z0-9._+-]*$/.test(v) && !v.endsWith(".") ? undefined : "is not a binary name (etcd, kube-apiserver, cni/bridge, docker/dockerd …)");

/** A member path inside a release archive: relative, no `..`, no option-like or hidden segments. */
export const archiveMember: Check = (v) => {
  if (v.startsWith("/")) return "is an absolute path (archive members are relative)";
  for (const seg of v.split("/")) {
    if (seg === "" || seg === "." || seg === "..") return `has a "${seg || "(empty)"}" path segment (would leave the extraction directory)`;
    if (seg.startsWith("-")) return `has a segment starting with '-' ("${seg}": tar would read it as an option)`;
    if (!/^[A-Za-z0-9_][A-Za-z0-9._+-]*$/.test(seg)) return `segment "${seg}" has characters outside letters, digits, '.', '_', '+', '-'`;
  }
  return undefined;
};

/** Characters that no inventory value needs and that change how files, terminals or parsers read it. */
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/;

/** Refuses control characters, byte-order marks and bidi overrides anywhere in a key or value. */
export const noInvisible: Check = (v) => {
  const bad = INVISIBLE.exec(v);
  return bad ? `contains ${describeChar(bad[0])} at position ${bad.index + 1}` : undefined;
};

/** A key or value as it can be shown in an error: invisible characters written as \uXXXX. */
export function visible(v: string): string {
  return v.replace(new RegExp(INVISIBLE.source, "g"), (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`);
}

export function describeChar(c: string): string {
  const names: Record<string, string> = { " ": "a space", "\t": "a tab", "\n": "a newline", "\r": "a carriage return", '"': "a double quote", "'": "a single quote", "\\": "a backslash", "$": "'$'", "`": "a backtick", "\ufeff": "a byte-order mark (U+FEFF)" };
  return names[c] ?? (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) > 0x7e ? `the character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}` : `'${c}'`);
}

/** The longest value an error message repeats; a longer one is cut in the middle. */
const SHOWN_MAX = 80;

/**
 * A value as an error or warning may repeat it: invisible characters written out, credentials in
 * a URL (user:password@) masked, and cut to SHOWN_MAX characters, so a 1 MB paste or a token
 * never reaches a terminal or a log.
 */
export function shown(v: string): string {
  const masked = safeUrl(visible(v));
  if (masked.length <= SHOWN_MAX) return masked;
  const half = SHOWN_MAX / 2 - 2;
  return `${masked.slice(0, half)}…(${masked.length} characters)…${masked.slice(-half)}`;
}

/** Query parameters that carry a credential (tokens, signatures of pre-signed URLs, passwords). */
const SECRET_PARAM = /^(?:access[_-]?token|token|auth|authorization|password|passwd|pass|secret|api[_-]?key|apikey|key|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature|x-goog-credential)$/i;

/** What in a URL is a credential: userinfo (user:password@) or a token-like query parameter; undefined when none. */
export function urlCredential(u: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(u)) return "user:password@";
  const q = /\?([^#]*)/.exec(u)?.[1];
  const param = q?.split("&").map((kv) => decodeURIComponentSafe(kv.split("=")[0]!)).find((k) => SECRET_PARAM.test(k));
  return param ? `the query parameter ${param}` : undefined;
}

/** A URL as a log line, an error or a rendered file may show it: credentials masked. */
export function safeUrl(u: string): string {
  return u
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1***@")
    .replace(/([?&])([^=&#]+)=([^&#]*)/g, (all, sep: string, k: string) => (SECRET_PARAM.test(decodeURIComponentSafe(k)) ? `${sep}${k}=***` : all));
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The environment variable that holds the download credentials for `host` (BINKUBE_DOWNLOAD_AUTH_DL_EXAMPLE_COM). */
export const downloadAuthVar = (host: string): string => `BINKUBE_DOWNLOAD_AUTH_${host.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;

/**
 * A systemd calendar event (OnCalendar=, systemd.time(7)): a shorthand (daily, hourly, …) or an
 * expression of weekdays, dates and times. Only the characters those use: no newline (another
 * directive), no '%' (a unit-file specifier), no quote or backslash.
 */
export const calendarEvent: Check = (v) => {
  if (v.trim() === "") return "is empty";
  const bad = /[^A-Za-z0-9*/:,.~ -]/.exec(v);
  if (bad) return `contains ${describeChar(bad[0])}, which an OnCalendar= expression does not use`;
  if (v.length > 100) return "is longer than 100 characters";
  const words = v.match(/[A-Za-z]+/g) ?? [];
  const known = /^(minutely|hourly|daily|weekly|monthly|yearly|annually|quarterly|semiannually|mon|tue|wed|thu|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday|utc)$/i;
  const unknown = words.find((w) => !known.test(w));
  if (unknown) return `names "${unknown}", which is no weekday or calendar shorthand`;
  return undefined;
};
