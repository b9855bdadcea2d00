// Small constructors for the files a step ships, so step modules read as lists.
import { render } from "../render/engine";
import { PlannedFile } from "./types";

export const SYSTEMD_DIR = "/usr/lib/systemd/system";
export const K8S = { bin: "/opt/kubernetes/bin", cfg: "/opt/kubernetes/cfg", ssl: "/opt/kubernetes/ssl", manifests: "/opt/kubernetes/manifests" };
export const ETCD = { bin: "/opt/etcd/bin", cfg: "/opt/etcd/cfg", ssl: "/opt/etcd/ssl", data: "/var/lib/etcd" };
/** The system user etcd runs as (the unit's User=). */
export const ETCD_USER = "etcd";
/** The lab caps LimitNOFILE at 20000; real hosts take the guide's 65536. */
export const LIMIT_NOFILE = 65536;

export function templated(path: string, template: string, data: Record<string, unknown>, mode = 0o644, secret = false): PlannedFile {
  return { path, mode, content: render(template, data), secret: secret || undefined };
}

export function unit(name: string, template: string, data: Record<string, unknown> = {}): PlannedFile {
  return templated(`${SYSTEMD_DIR}/${name}.service`, template, { limitNoFile: LIMIT_NOFILE, ...data });
}

export function binary(dir: string, name: string): PlannedFile {
  return { path: `${dir}/${name.split("/").pop()}`, mode: 0o755, binary: name };
}

/** A binary group's files in `dir`: its required members and whatever else its folder holds (shipped as found), sorted. */
export function groupBinaries(dir: string, required: readonly string[], present: readonly string[]): PlannedFile[] {
  return [...new Set([...required, ...present])].sort().map((n) => binary(dir, n));
}

export function cert(path: string, pem: string): PlannedFile {
  return { path, mode: 0o644, content: pem };
}

export function secret(path: string, content: string): PlannedFile {
  return { path, mode: 0o600, content, secret: true };
}
