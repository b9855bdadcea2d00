// addons: flannel (pod network), kube-router's NetworkPolicy firewall, CoreDNS and metrics-server,
// applied once from the first master.
import { REQUIRED_CNI } from "../binaries/catalog";
import { hostsWithRole, kubeletHosts } from "../inventory/types";
import { K8S, templated } from "./files";
import { StepDef, RunContext, StepContext } from "./types";
import { GateError, waitFor } from "../util/wait";
import { podReadiness, type PodReadiness } from "./pod-status";
import { KUBECTL, kubectl, kubectlApply } from "./actions";
import { flannelCniConfig } from "./cni";
import { leafRef } from "../pki/refs";
import { nodeApiserverHostPort } from "../pki/kubeconfig";
import { watchFailures, type FailureWatch } from "./first-bring-up";

/** Waits for a ready pod of SELECTOR (kube-system) on every node; a timeout names each stuck pod, why, and its last log lines. */
async function waitForPods(rc: RunContext, selector: string, nodes: string[], watch: FailureWatch, fix: string): Promise<void> {
  let last: PodReadiness | undefined;
  const missing = () => nodes.filter((n) => !last?.ready.has(n));
  try {
    await waitFor(
      `${selector} pods ready on ${nodes.length} nodes`,
      async () => {
        watch();
        const json = await kubectl(rc.remote, `-n kube-system get pods -l ${selector} -o json`, { allowFail: true });
        if (json === "") return "the API did not answer";
        last = podReadiness(json);
        const waiting = missing();
        if (waiting.length === 0) return true;
        const stuck = last.notReady.filter((p) => waiting.includes(p.node)).map((p) => p.line);
        const absent = waiting.filter((n) => !last!.notReady.some((p) => p.node === n));
        return `${nodes.length - waiting.length}/${nodes.length} ready; ${[...stuck, ...absent.map((n) => `${n}: no pod yet`)].join(" | ")}`;
      },
      { timeoutMs: 300_000, intervalMs: 1000, log: rc.log, fix },
    );
  } catch (e) {
    if (!(e as Error).message.startsWith("timed out")) throw e;
    const logs = await Promise.all(
      (last?.notReady ?? []).filter((p) => missing().includes(p.node)).slice(0, 3).map(async (p) => {
        const events = await kubectl(rc.remote, `-n kube-system get events --field-selector involvedObject.name=${p.pod} -o custom-columns=REASON:.reason,MESSAGE:.message --no-headers`, { allowFail: true });
        const log = await kubectl(rc.remote, `-n kube-system logs ${p.pod} --all-containers --tail 10`, { allowFail: true });
        return `${p.line}\n  events:\n${indent(events.split("\n").slice(-8).join("\n"))}\n  last log lines:\n${indent(log)}`;
      }),
    );
    throw new GateError(`${(e as Error).message}${logs.length ? `\n${logs.join("\n")}` : ""}`);
  }
}

const indent = (text: string) => text.trim().replace(/^/gm, "    ") || "    (none)";

async function runAddons(rc: RunContext): Promise<string> {
  const nodes = kubeletHosts(rc.inv).map((h) => h.name);
  // a first deploy applies the manifests while the nodes join (the kube-proxy edge below)
  const watch = watchFailures(rc, (e) => nodes.includes(e.host), "the nodes to join");
  const sync = await rc.sync();
  // Every manifest at once: metrics-server's pod starts while flannel and CoreDNS come up.
  const metricsOn = rc.inv.addons.metricsServer;
  const policyOn = rc.inv.addons.networkPolicy;
  await kubectlApply(rc.remote, `-f ${K8S.manifests}/kube-flannel.yaml -f ${K8S.manifests}/coredns.yaml${policyOn ? ` -f ${KUBE_ROUTER_MANIFEST}` : ""}${metricsOn ? ` -f ${METRICS_MANIFEST}` : ""}`);
  await waitFor(
    `nodes Ready (${nodes.join(", ")})`,
    async () => {
      watch();
      const out = await kubectl(rc.remote, `get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}'`, { allowFail: true });
      const ready = nodes.filter((n) => out.includes(`${n}=True`));
      return ready.length === nodes.length ? true : `${ready.length}/${nodes.length} Ready`;
    },
    { timeoutMs: 300_000, intervalMs: 1000, log: rc.log, fix: "check the flannel pods: kubectl -n kube-system get pods -o wide; images must be pullable or preloaded" },
  );
  // Nodes turn Ready as soon as the CNI config exists; flannel running on every node is what
  // makes pod traffic cross hosts.
  await waitForPods(rc, "app=flannel", nodes, watch, "check kubectl -n kube-system logs -l app=flannel; the flannel image must be pullable or preloaded (images.preload)");
  const policy = await networkPolicy(rc, nodes, watch);
  await waitFor(
    "CoreDNS available",
    async () => (watch(), Number(await kubectl(rc.remote, "-n kube-system get deploy coredns -o jsonpath={.status.availableReplicas}", { allowFail: true })) >= 1 ? true : "no replica available"),
    { timeoutMs: 180_000, intervalMs: 1000, log: rc.log, fix: "check kubectl -n kube-system describe pods -l k8s-app=kube-dns" },
  );
  const metrics = await metricsServer(rc, nodes, watch);
  return `${sync.changed.length} files changed, flannel + CoreDNS running, ${nodes.length} nodes Ready, ${policy}, ${metrics}`;
}

const KUBE_ROUTER_MANIFEST = `${K8S.manifests}/kube-router.yaml`;
const KUBE_ROUTER_CLEANUP = `${K8S.manifests}/kube-router-cleanup.yaml`;

/**
 * kube-router's firewall on every node (on): ready on each, since a node without it lets every
 * pod there take any traffic a policy denies. Off: its objects go, by their label, and then its
 * rules and ipsets, which it leaves behind when it stops (kube-router-cleanup.yaml). Its manifest
 * on this master is removed last: while it is there, a run that stopped half-way is finished.
 */
async function networkPolicy(rc: RunContext, nodes: string[], watch: FailureWatch): Promise<string> {
  if (rc.inv.addons.networkPolicy) {
    await waitForPods(rc, "k8s-app=kube-router", nodes, watch, "check kubectl -n kube-system logs -l k8s-app=kube-router; the kube-router image must be pullable or preloaded (images.preload)");
    return "NetworkPolicy enforced by kube-router on every node";
  }
  const ran = (await rc.sh(`test -e ${KUBE_ROUTER_MANIFEST} && echo manifest; ${KUBECTL} -n kube-system get daemonset kube-router --ignore-not-found -o name`)).stdout.trim() !== "";
  await rc.sh(`${KUBECTL} delete clusterrole,clusterrolebinding -l k8s-app=kube-router --ignore-not-found && ${KUBECTL} -n kube-system delete daemonset,serviceaccount -l k8s-app=kube-router --ignore-not-found`);
  // its pods stop before the cleanup runs: a running one would put its rules back
  await waitPodsGone(rc, "k8s-app=kube-router", "a node that is down keeps its pod until it returns or is removed");
  if (ran) {
    await kubectlApply(rc.remote, `-f ${KUBE_ROUTER_CLEANUP}`);
    await waitForPods(rc, "k8s-app=kube-router-cleanup", nodes, watch, "check kubectl -n kube-system logs -l k8s-app=kube-router-cleanup -c cleanup; the kube-router image must still be on the node or pullable");
    await rc.sh(`${KUBECTL} -n kube-system delete daemonset kube-router-cleanup --ignore-not-found`);
    await waitPodsGone(rc, "k8s-app=kube-router-cleanup", "its pods only run pause once the cleanup is done");
  }
  await rc.sh(`rm -f ${KUBE_ROUTER_MANIFEST}`);
  return `NetworkPolicy NOT enforced (addons.networkPolicy: false${ran ? "; kube-router's rules and ipsets removed from every node" : ""})`;
}

/** Waits until no kube-system pod matches SELECTOR (deleted DaemonSets' pods go asynchronously). */
async function waitPodsGone(rc: RunContext, selector: string, why: string): Promise<void> {
  await waitFor(
    `${selector} pods gone`,
    async () => {
      const r = await rc.sh(`${KUBECTL} -n kube-system get pods -l ${selector} -o name`, { allowFail: true });
      if (r.code !== 0) return "the API did not answer";
      const left = r.stdout.split("\n").filter(Boolean);
      return left.length === 0 ? true : `${left.length} still stopping`;
    },
    { timeoutMs: 120_000, intervalMs: 1000, log: rc.log, fix: `check kubectl -n kube-system get pods -l ${selector} -o wide (${why})` },
  );
}

const METRICS_MANIFEST = `${K8S.manifests}/metrics-server.yaml`;

/**
 * metrics-server on (applied with the other manifests): gated on what an operator uses it for: the aggregated API
 * answers through the apiserver (front proxy → Service → pod) with a sample of every node (its
 * scrape of each kubelet over verified TLS). Off: its objects go, by their label.
 */
async function metricsServer(rc: RunContext, nodes: string[], watch: FailureWatch): Promise<string> {
  if (!rc.inv.addons.metricsServer) {
    await rc.sh(`${KUBECTL} delete apiservice,clusterrole,clusterrolebinding -l k8s-app=metrics-server --ignore-not-found && ${KUBECTL} -n kube-system delete deploy,svc,sa,secret,rolebinding -l k8s-app=metrics-server --ignore-not-found && rm -f ${METRICS_MANIFEST}`);
    return "metrics-server off";
  }
  await waitFor(
    `metrics.k8s.io serving node metrics of ${nodes.length} nodes (kubectl top nodes)`,
    async () => {
      watch();
      const out = await kubectl(rc.remote, "get --raw /apis/metrics.k8s.io/v1beta1/nodes", { allowFail: true });
      if (out === "") {
        const cond = await kubectl(rc.remote, `get apiservice v1beta1.metrics.k8s.io -o jsonpath='{.status.conditions[?(@.type=="Available")].message}'`, { allowFail: true });
        return `the API does not answer yet${cond ? `: ${cond}` : ""}`;
      }
      const seen = ((JSON.parse(out) as { items?: { metadata: { name: string } }[] }).items ?? []).map((i) => i.metadata.name);
      const missing = nodes.filter((n) => !seen.includes(n));
      return missing.length === 0 ? true : `no metrics yet for ${missing.join(", ")}`;
    },
    { timeoutMs: 240_000, intervalMs: 1000, log: rc.log, fix: "check kubectl -n kube-system logs deploy/metrics-server and kubectl get apiservice v1beta1.metrics.k8s.io -o yaml; the image must be pullable or preloaded (images.preload)" },
  );
  return "metrics-server serving every node";
}

export const addons: StepDef = {
  name: "addons",
  scope: "once",
  description: "flannel, kube-router's NetworkPolicy firewall, CoreDNS and metrics-server manifests",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [
    { step: "bootstrap", on: "all", why: "the addons' RBAC and PodSecurityPolicies" },
    { step: "controller-manager", on: "all", why: "CoreDNS and metrics-server are Deployments: the controller-manager makes their pods" },
    { step: "scheduler", on: "all", why: "CoreDNS and metrics-server are Deployments: the scheduler places their pods" },
    {
      step: "kube-proxy",
      on: "all",
      why: "Service traffic (CoreDNS, the metrics API) needs every node's kube-proxy (and so its kubelet); a changed manifest rolls its pods only after the nodes' own roll",
      // A first deploy applies the manifests while the kubelets join (flannel's pods start as each
      // node registers); the gate waits for the nodes itself, and stops when a step fails on one (first-bring-up.ts).
      skipOnFirstBringUp: true,
    },
  ],
  run: runAddons,
  certificates: (inv) => (inv.addons.metricsServer ? ["metrics-server"] : []),
  // Its gate waits for Ready nodes: without kubelet and the CNI plugins it could only time out.
  usesBinaries: ["kubectl", "kube-apiserver", "kubelet", ...REQUIRED_CNI],
  files: ({ inv, pki }) => [
    templated(`${K8S.manifests}/kube-flannel.yaml`, "addons/kube-flannel.yaml", {
      podCIDR: inv.network.podCIDR,
      flannelBackend: inv.network.flannelBackend,
      flannelImage: inv.images.flannel,
      cniConf: flannelCniConfig().content,
      ...apiEnv(inv),
    }),
    templated(`${K8S.manifests}/coredns.yaml`, "addons/coredns.yaml", {
      clusterDomain: inv.network.clusterDomain,
      clusterDNS: inv.network.clusterDNS,
      corednsImage: inv.images.coredns,
      corednsReplicas: 2,
    }),
    ...(inv.addons.networkPolicy
      ? [
          templated(KUBE_ROUTER_MANIFEST, "addons/kube-router.yaml", {
            version: inv.images.kubeRouter.split(":").pop() ?? "",
            image: inv.images.kubeRouter,
            serviceCIDR: inv.network.serviceCIDR,
            nodePortRange: inv.network.nodePortRange,
            ...apiEnv(inv),
          }),
        ]
      : [templated(KUBE_ROUTER_CLEANUP, "addons/kube-router-cleanup.yaml", { image: inv.images.kubeRouter, pauseImage: inv.images.pause })]),
    ...(inv.addons.metricsServer ? [metricsServerManifest(inv, pki)] : []),
  ],
};

/** Where the pod network's DaemonSets (host network) reach the apiserver: see nodeApiserverHostPort. */
function apiEnv(inv: StepContext["inv"]): { apiHost: string; apiPort: string } {
  const { host, port } = nodeApiserverHostPort(inv);
  return { apiHost: host, apiPort: port };
}

function metricsServerManifest(inv: StepContext["inv"], pki: StepContext["pki"]) {
  const l = leafRef("metrics-server");
  const ca = pki.cas.ca.certPem;
  return templated(METRICS_MANIFEST, "addons/metrics-server.yaml", { image: inv.images.metricsServer, certPem: l.certPem, keyPem: l.keyPem, caPem: ca, caBundle: Buffer.from(ca).toString("base64") }, 0o600, true);
}
