// images: the images binkube's units and addons run (registry-free clusters name their own), and
// the archives preloaded on every node (their place and format: the local-file pass).
import * as path from "node:path";
import { fileName, imageRef } from "../grammar";
import type { Obj, Reader } from "../reader";
import type { Inventory } from "../types";
import { LocalFile, expandPath, fits } from "./common";

const IMAGE_DEFAULTS = {
  pause: "k8s.gcr.io/pause:3.1",
  flannel: "quay.io/coreos/flannel:v0.12.0-amd64",
  coredns: "coredns/coredns:1.6.5",
  // v0.4.4: the metrics-server for 1.17 that the module proxy serves (0.3.x is refused; 0.4.x
  // supports Kubernetes 1.8+, same metrics.k8s.io/v1beta1 API)
  metricsServer: "k8s.gcr.io/metrics-server/metrics-server:v0.4.4",
  // v1.3.2: the newest v1 release the module proxy serves (v1.0–v1.2 are refused, v2.1.0 has
  // reported security flaws); NetworkPolicy networking.k8s.io/v1 as v1.17 serves it. With
  // binkube's backport of --netpol-default-deny (test/fixtures/kube-router.sh), which the
  // DaemonSet passes: an image without that flag does not start (docs/network-policy.md)
  kubeRouter: "binkube/kube-router:v1.3.2-binkube.1",
} as const;

export function readImages(r: Reader, raw: Obj, baseDir: string, files: LocalFile[]): Inventory["images"] {
  const img = r.section(raw, "images", "");
  r.known(img, ["pause", "flannel", "coredns", "metricsServer", "kubeRouter", "preload"], "images");
  const images = {
    pause: r.str(img, "pause", "images", IMAGE_DEFAULTS.pause),
    flannel: r.str(img, "flannel", "images", IMAGE_DEFAULTS.flannel),
    coredns: r.str(img, "coredns", "images", IMAGE_DEFAULTS.coredns),
    metricsServer: r.str(img, "metricsServer", "images", IMAGE_DEFAULTS.metricsServer),
    kubeRouter: r.str(img, "kubeRouter", "images", IMAGE_DEFAULTS.kubeRouter),
  };
  for (const [k, v] of Object.entries(images)) fits(r, `images.${k}`, v, imageRef, "write an image reference such as registry.local:5000/pause:3.1");
  const preload = r.strList(img, "preload", "images").map((p) => expandPath(p, baseDir));
  const archiveNames = new Map<string, number>();
  preload.forEach((p, i) => {
    const base = path.basename(p);
    if (!fits(r, `images.preload[${i}]`, base, fileName, "rename the archive (it keeps its file name on every node)")) return;
    if (archiveNames.has(base)) return r.error(`images.preload[${i}]`, `has the same file name as images.preload[${archiveNames.get(base)}] (${base}); both would land at one path on the nodes`, "rename one of them");
    archiveNames.set(base, i);
    files.push({ field: `images.preload[${i}]`, path: p, kind: "imageArchive" });
  });
  return { ...images, preload };
}
