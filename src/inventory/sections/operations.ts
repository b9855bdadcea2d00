// How binkube runs the cluster rather than what it runs: the certificates' lifetimes, the rolling
// order, where Terraform's state lives.
import type { Obj, Reader } from "../reader";
import type { Inventory } from "../types";

export function readCertificates(r: Reader, raw: Obj): Inventory["certificates"] {
  const certs = r.section(raw, "certificates", "");
  r.known(certs, ["validityDays", "caValidityDays", "kubeletValidityDays"], "certificates");
  const validityDays = r.int(certs, "validityDays", "certificates", 365, 1, 3650);
  const caValidityDays = r.int(certs, "caValidityDays", "certificates", 3650, 30, 36500);
  const kubeletValidityDays = r.int(certs, "kubeletValidityDays", "certificates", 365, 1, 3650);
  if (caValidityDays < validityDays) r.error("certificates.caValidityDays", `the CAs (${caValidityDays} d) would expire before the certificates they sign (${validityDays} d)`, "make caValidityDays at least validityDays");
  if (caValidityDays < kubeletValidityDays) r.error("certificates.kubeletValidityDays", `kubelet certificates (${kubeletValidityDays} d) would outlive the CA that signs them (${caValidityDays} d)`, "make kubeletValidityDays at most caValidityDays");
  return { validityDays, caValidityDays, kubeletValidityDays };
}

export function readRolling(r: Reader, raw: Obj): Inventory["rolling"] {
  const rolling = r.section(raw, "rolling", "");
  r.known(rolling, ["maxUnavailable", "drainTimeoutSeconds"], "rolling");
  return { maxUnavailable: readMaxUnavailable(r, rolling), drainTimeoutSeconds: r.int(rolling, "drainTimeoutSeconds", "rolling", 300, 10, 3600) };
}

/** rolling.maxUnavailable: a count (>= 1) or a percentage of the nodes ("25%", 1-100). */
function readMaxUnavailable(r: Reader, rolling: Obj): number | `${number}%` {
  const v = rolling.maxUnavailable;
  if (v === undefined || v === null) return 1;
  if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 10_000) return v;
  if (typeof v === "string" && /^(100|[1-9][0-9]?)%$/.test(v)) return v as `${number}%`;
  r.error("rolling.maxUnavailable", `must be a whole number of nodes (1 or more) or a percentage such as "25%", got ${JSON.stringify(v)}`, "set 1 (the default: one node at a time) or a percentage of the nodes");
  return 1;
}

/** state: { backend: local | pg, schema }; a pg schema defaults to binkube_<cluster name>. */
export function readState(r: Reader, raw: Obj, clusterName: string): Inventory["state"] {
  const st = r.section(raw, "state", "");
  r.known(st, ["backend", "schema"], "state");
  if ("connStr" in st || "conn_str" in st) r.error("state", "the connection string does not go in the inventory (it would land in cdktf.out)", "export PG_CONN_STR=postgres://USER@HOST/DB?sslmode=require in the shell that runs cdktf deploy");
  const backend = r.oneOf(st, "backend", "state", ["local", "pg"] as const, "local");
  if (backend === "local") {
    if (st.schema !== undefined) r.error("state.schema", "only means something with backend: pg", "remove it, or set backend: pg");
    return { backend };
  }
  const schema = r.str(st, "schema", "state", `binkube_${clusterName.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`);
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) r.error("state.schema", `"${schema}" is not a plain PostgreSQL schema name`, "use lowercase letters, digits and _ (at most 63), starting with a letter or _");
  return { backend, schema };
}
