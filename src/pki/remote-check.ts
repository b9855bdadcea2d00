// `binkube certs check --remote`: the certificate each endpoint actually serves, compared with
// pki/. Shows whether a renewal has been rolled out everywhere.
import * as tls from "node:tls";
import { Inventory, hostsWithRole, kubeletHosts } from "../inventory/types";
import { etcdPeerCert, etcdServerCert, kubeletServerCert } from "./catalog";
import type { Pki } from "./load";
import { currentLeaf } from "./disk";
import { BinkubeError } from "../errors";
import { normalSerial } from "./issuance";
import { formatTable } from "../util/table";

export interface ServedRow {
  endpoint: string;
  cert: string;
  expectedSerial: string;
  servedSerial: string;
  status: "current" | "STALE" | "UNREACHABLE";
  detail: string;
}

function servedSerial(host: string, port: number, clientCert?: { cert: string; key: string }, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ...clientCert, servername: undefined });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no TLS answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const serial = socket.getPeerCertificate().serialNumber ?? "";
      socket.end();
      resolve(serial.toLowerCase());
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export async function remoteRows(inv: Inventory, pki: Pki): Promise<ServedRow[]> {
  const leaf = (name: string) => {
    const l = currentLeaf(pki.dir, name);
    if (!l) throw new BinkubeError(`certificate ${name} is not issued yet: run \`npx cdktf deploy\` first`);
    return l;
  };
  const health = leaf("etcd-healthcheck-client");
  const etcdClient = { cert: health.certPem, key: health.keyPem };
  const checks: { endpoint: string; host: string; port: number; cert: string; client?: { cert: string; key: string } }[] = [];
  for (const h of hostsWithRole(inv, "etcd")) {
    checks.push({ endpoint: `${h.name} etcd client ${h.address}:2379`, host: h.address, port: 2379, cert: etcdServerCert(h), client: etcdClient });
    checks.push({ endpoint: `${h.name} etcd peer ${h.address}:2380`, host: h.address, port: 2380, cert: etcdPeerCert(h), client: etcdClient });
  }
  for (const h of hostsWithRole(inv, "master")) {
    checks.push({ endpoint: `${h.name} kube-apiserver ${h.address}:${inv.network.apiserverPort}`, host: h.address, port: inv.network.apiserverPort, cert: "apiserver" });
  }
  for (const h of kubeletHosts(inv)) {
    checks.push({ endpoint: `${h.name} kubelet ${h.address}:10250`, host: h.address, port: 10250, cert: kubeletServerCert(h) });
  }
  return Promise.all(
    checks.map(async (c): Promise<ServedRow> => {
      const expectedSerial = normalSerial(leaf(c.cert).cert.serialNumber);
      try {
        const served = normalSerial(await servedSerial(c.host, c.port, c.client));
        const current = served === expectedSerial;
        return { endpoint: c.endpoint, cert: c.cert, expectedSerial, servedSerial: served, status: current ? "current" : "STALE", detail: current ? "" : "serves an older certificate: run npx cdktf deploy" };
      } catch (e) {
        return { endpoint: c.endpoint, cert: c.cert, expectedSerial, servedSerial: "-", status: "UNREACHABLE", detail: (e as Error).message };
      }
    }),
  );
}

export function formatServed(rows: ServedRow[]): string {
  const head = ["ENDPOINT", "CERTIFICATE", "SERVED SERIAL", "STATUS"];
  const cells = rows.map((r) => [r.endpoint, r.cert, r.servedSerial.slice(0, 16) + (r.servedSerial.length > 16 ? "…" : ""), r.status + (r.detail ? ` (${r.detail})` : "")]);
  return formatTable(head, cells);
}
