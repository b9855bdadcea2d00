// `binkube certs check`: one row per certificate, like `kubeadm certs check-expiration`.
import { Inventory } from "../inventory/types";
import { CAS, leafSpecs } from "./catalog";
import { leafProblem } from "./ensure";
import { currentLeaf, loadPair } from "./disk";
import type { Pki } from "./load";
import { readRecord } from "./issuance";
import { certFacts } from "./x509";
import { formatTable } from "../util/table";
import { latestCertificate, readAccessLedger } from "../access/ledger";

export interface CertRow {
  name: string;
  subject: string;
  sans: string;
  issuer: string;
  notAfter: string;
  daysLeft: number;
  status: string;
}

export const EXPIRY_WARNING_DAYS = 30;

export function checkRows(inv: Inventory, pki: Pki, now = new Date()): CertRow[] {
  const rows: CertRow[] = [];
  const row = (name: string, certStatus: string | undefined, facts: ReturnType<typeof certFacts>) => {
    const daysLeft = Math.floor((facts.notAfter.getTime() - now.getTime()) / 86400000);
    let status = certStatus ?? "ok";
    if (!certStatus && daysLeft < EXPIRY_WARNING_DAYS) status = `expiring (< ${EXPIRY_WARNING_DAYS} d)`;
    rows.push({
      name,
      subject: [`CN=${facts.cn}`, ...facts.o.map((o) => `O=${o}`)].join(","),
      sans: [...facts.dnsNames, ...facts.ips].join(",") || "-",
      issuer: facts.issuerCN,
      notAfter: facts.notAfter.toISOString().slice(0, 10),
      daysLeft,
      status,
    });
  };
  for (const ca of CAS) row(ca.name, undefined, certFacts(pki.cas[ca.name].cert));
  for (const spec of leafSpecs(inv)) {
    // Not the certificate its issuance record names (pki/issuance.ts): what is on disk, if anything.
    const current = currentLeaf(pki.dir, spec.name);
    const issued = current ?? loadPair(pki.dir, spec.name);
    const pending = current ? undefined : readRecord(pki.dir, spec.name);
    if (!issued) {
      rows.push({ name: spec.name, subject: `CN=${spec.subject.cn}`, sans: [...spec.dnsNames, ...spec.ips].join(",") || "-", issuer: spec.ca, notAfter: "-", daysLeft: Number.POSITIVE_INFINITY, status: "pending: issued by the first step that ships it" });
      continue;
    }
    const problem = leafProblem(issued, spec, pki.cas[spec.ca], now);
    row(spec.name, problem ? `WRONG: ${problem}` : pending ? (pending.issued ? "WRONG: not the certificate binkube issued (run npx cdktf deploy)" : "pending: reissued by the first step that ships it") : undefined, certFacts(issued.cert));
  }
  return rows;
}

/**
 * One row per scoped credential (`binkube kubeconfig create`) not revoked: its newest certificate,
 * from pki/users.json. Short-lived by design, so one is expiring in the last quarter of its life
 * (at most the last 30 days), not in the last 30 days of a 30-day certificate's.
 */
export function userCertRows(pkiDir: string, now = new Date()): CertRow[] {
  const caCN = CAS.find((c) => c.name === "ca")!.cn;
  return Object.values(readAccessLedger(pkiDir).users)
    .filter((u) => !u.revokedAt)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((u) => {
      const c = latestCertificate(u);
      const notAfter = new Date(c.notAfter);
      const lifeDays = (notAfter.getTime() - Date.parse(c.notBefore)) / 86400000;
      const warnDays = Math.min(EXPIRY_WARNING_DAYS, Math.ceil(lifeDays / 4));
      const daysLeft = Math.floor((notAfter.getTime() - now.getTime()) / 86400000);
      const status = notAfter <= now ? "expired" : daysLeft < warnDays ? `expiring (< ${warnDays} d)` : "ok";
      return { name: `user/${u.name}`, subject: [`CN=${u.name}`, ...(c.group ? [`O=${c.group}`] : [])].join(","), sans: "-", issuer: caCN, notAfter: c.notAfter.slice(0, 10), daysLeft, status };
    });
}

export function formatCertTable(rows: CertRow[]): string {
  const head = ["CERTIFICATE", "SUBJECT", "SANS", "ISSUER", "EXPIRES", "DAYS LEFT", "STATUS"];
  return formatTable(head, rows.map((r) => [r.name, r.subject, r.sans, r.issuer, r.notAfter, Number.isFinite(r.daysLeft) ? String(r.daysLeft) : "-", r.status]), 60);
}
