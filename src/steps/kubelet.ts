// kubelet: joins by TLS bootstrap (token → CSR → certificate approved automatically), CNI
// plugins for flannel, read-only port off, webhook authn/authz.
import { BINARIES, REQUIRED_CNI } from "../binaries/catalog";
import { hasRole, kubeletHosts } from "../inventory/types";
import { bootstrapKubeconfig, nodeApiserverURL } from "../pki/kubeconfig";
import { K8S, binary, cert, secret, unit } from "./files";
import { kubeletConf, kubeletConfig } from "./kubelet-files";
import { flannelCniConfig } from "./cni";
import { KUBELET_RUNTIME_DEPS, kubeletRuntime } from "./runtime-contract";
import { StepDef, RunContext, StepRemote } from "./types";
import { kubeletServerCert } from "../pki/catalog";
import { leafRef } from "../pki/refs";
import { waitFor } from "../util/wait";
import { KUBECTL, activeAndHealthy, applyUnit, checkReleaseVersion, hasJoined, kubectl, kubectlApply, nodeReadyStatus } from "./actions";
import { bootstrapTokenSecret, newBootstrapToken } from "./bootstrap-token";
import { shq } from "../remote/shell";
import { shown } from "../inventory/grammar";


const BOOTSTRAP_KUBECONFIG = `${K8S.cfg}/bootstrap.kubeconfig`;
/** Written by the kubelet itself at TLS bootstrap (the client certificate it got, the bootstrap kubeconfig's server). */
const KUBELET_KUBECONFIG = `${K8S.cfg}/kubelet.kubeconfig`;
/** Where the kubelet's certificate manager links the client certificate its CSR brought (--cert-dir). */
const CLIENT_CERT = `${K8S.ssl}/kubelet-client-current.pem`;

/**
 * A node without a client certificate yet gets a bootstrap token of its own: a Secret on the
 * control plane, and bootstrap.kubeconfig on the node, both over stdin. Returns the token's
 * Secret name, to delete once the node is Ready; undefined for a node that already joined.
 */
async function issueBootstrapToken(rc: RunContext, control: StepRemote): Promise<string | undefined> {
  if (await hasJoined(rc)) return undefined;
  const t = newBootstrapToken();
  await kubectlApply(control, "-f -", { stdin: bootstrapTokenSecret(t, rc.host.name) });
  const ca = rc.files.find((f) => f.path === `${K8S.ssl}/ca.pem`)!.content!;
  await rc.sh(`umask 077 && cat > ${BOOTSTRAP_KUBECONFIG}.tmp && mv -f ${BOOTSTRAP_KUBECONFIG}.tmp ${BOOTSTRAP_KUBECONFIG}`, { stdin: bootstrapKubeconfig(rc.inv, ca, t.token) });
  return t.secretName;
}

/**
 * The kubelet keeps the server its bootstrap kubeconfig named: a node that joined before the
 * node-local apiserver proxy was on (a second master added), or before apiserver.endpoint was set,
 * would go on talking to the old address. Points kubelet.kubeconfig at the current one; true when
 * it changed (the kubelet must restart to use it).
 */
export async function pointKubeconfigAt(rc: Pick<RunContext, "sh" | "note">, server: string, file = KUBELET_KUBECONFIG): Promise<boolean> {
  const current = /^\s*server:\s*(\S+)/m.exec((await rc.sh(`cat ${shq(file)} 2>/dev/null || true`)).stdout)?.[1];
  if (current === undefined || current === server) return false;
  const tmp = shq(`${file}.tmp`);
  await rc.sh(`sed -E ${shq(`s#^([[:space:]]*server:).*#\\1 ${server}#`)} ${shq(file)} > ${tmp} && chmod 0600 ${tmp} && mv -f ${tmp} ${shq(file)}`);
  rc.note(`kubelet.kubeconfig now points at ${server} (was ${current})`);
  return true;
}

/**
 * The node's role, as kubeadm shows it in `kubectl get nodes`, and the master taint: when the
 * inventory asks for it, and always on a master that is not also a node (it runs a kubelet
 * only so that its apiserver reaches the pod network: runsKubelet).
 */
export function nodeRole(rc: Pick<RunContext, "host" | "inv">): { role: "master" | "node"; taint: boolean } {
  const master = hasRole(rc.host, "master");
  return { role: master ? "master" : "node", taint: master && (rc.inv.kubelet.taintMasters || !hasRole(rc.host, "node")) };
}

const ROLE_LABEL = "node-role.kubernetes.io/";
const MASTER_TAINT = "node-role.kubernetes.io/master";

/**
 * Labels and taints go through the API: kubelet v1.17 may not set node-role labels on itself
 * (NodeRestriction). binkube owns the two role labels and the master NoSchedule taint; changes
 * touch only what differs, so a re-run with nothing new writes nothing.
 */
async function applyNodeRole(rc: RunContext, control: StepRemote): Promise<string> {
  const { role, taint } = nodeRole(rc);
  const node = JSON.parse(await kubectl(control, `get node ${shq(rc.host.name)} -o json`)) as { metadata: { labels?: Record<string, string> }; spec: { taints?: { key: string; effect: string }[] } };
  const labels = node.metadata.labels ?? {};
  const other = role === "master" ? "node" : "master";
  const edits = [...(labels[ROLE_LABEL + role] === undefined ? [`${ROLE_LABEL}${role}=`] : []), ...(labels[ROLE_LABEL + other] !== undefined ? [`${ROLE_LABEL}${other}-`] : [])];
  if (edits.length > 0) await control.exec(`${KUBECTL} label node ${shq(rc.host.name)} --overwrite ${edits.join(" ")}`);
  const tainted = (node.spec.taints ?? []).some((t) => t.key === MASTER_TAINT && t.effect === "NoSchedule");
  if (taint && !tainted) await control.exec(`${KUBECTL} taint node ${shq(rc.host.name)} --overwrite ${MASTER_TAINT}=:NoSchedule`);
  if (!taint && tainted) await control.exec(`${KUBECTL} taint node ${shq(rc.host.name)} ${MASTER_TAINT}:NoSchedule-`);
  return `role ${role}${taint ? ", tainted NoSchedule" : ""}`;
}

async function runKubelet(rc: RunContext): Promise<string> {
  // Accepted in the inventory with a reason, and said again at every deploy (docs/cis.md).
  for (const w of rc.inv.kubelet.weakened) rc.warn(`the kubelet runs with --${w.flag}=${shown(rc.inv.kubelet.extraArgs[w.flag] ?? "")}, which weakens it (kubelet.weakened: "${shown(w.reason)}"; docs/cis.md)`);
  const sync = await rc.sync();
  await checkReleaseVersion(rc, "kubelet");
  const control = await rc.controlPlane();
  const token = await issueBootstrapToken(rc, control);
  const repointed = await pointKubeconfigAt(rc, nodeApiserverURL(rc.inv));
  const action = await applyUnit(rc, "kubelet", sync.changed.length > 0 || token !== undefined || repointed);
  // With rotateCertificates, kubelet v1.17 bootstraps in the background: it registers its node
  // only once its API client uses the certificate its CSR brought, which a fixed 10 s check picks
  // up (pkg/kubelet/certificate/transport.go), 0-10 s after the file is written. A joining
  // kubelet (no pod yet) is restarted once as soon as the file is there: it then starts with it.
  let restartedWithCert = token === undefined;
  await activeAndHealthy(rc, "kubelet", { timeoutMs: 90_000 }, async () => {
    // A restarted kubelet serves again (logs, exec, metrics on :10250, with its new certificate) a
    // few seconds after its unit is active; its node may still read Ready from before the restart.
    await waitFor(
      `kubelet on ${rc.host.name} listening on :10250`,
      async () => {
        const r = await rc.sh(`command -v ss >/dev/null || { echo no-ss; exit 0; }; ss -Hltn 'sport = :10250' | grep -q . && echo listening || true`, { timeoutMs: 15_000 });
        return /listening|no-ss/.test(r.stdout) ? true : "not listening on :10250 yet";
      },
      { timeoutMs: 120_000, intervalMs: 1000, log: rc.log, fix: `check journalctl -u kubelet on ${rc.host.name}` },
    );
    // TLS bootstrap: token → CSR → approved by the controller-manager → node object → Ready.
    await waitFor(
      `node ${rc.host.name} to register (TLS bootstrap, automatic CSR approval) and turn Ready`,
      async () => {
        const ready = await nodeReadyStatus(control, rc.host.name);
        if (ready === "True") return true;
        if (ready) return "registered, not Ready yet";
        if (!restartedWithCert && (await rc.sh(`test -s ${CLIENT_CERT} && echo have-cert || true`)).stdout.includes("have-cert")) {
          restartedWithCert = true;
          await rc.sh("systemctl restart kubelet");
          return "not registered; restarted to register with its new client certificate";
        }
        return "not registered";
      },
      { timeoutMs: 180_000, intervalMs: 1000, log: rc.log, fix: `check journalctl -u kubelet on ${rc.host.name} and kubectl get csr` },
    );
  });
  const role = await applyNodeRole(rc, control);
  // Used: gone at once (it would expire on its own; the controller-manager's tokencleaner deletes it then).
  if (token) await control.exec(`${KUBECTL} -n kube-system delete secret ${shq(token)} --ignore-not-found`);
  return `${sync.changed.length} files changed, ${action}, node Ready, ${role}${token ? " (joined with a fresh bootstrap token, now deleted)" : ""}`;
}

export const kubelet: StepDef = {
  name: "kubelet",
  scope: "host",
  description: "kubelet: binaries, CNI plugins, bootstrap kubeconfig, config, unit",
  hosts: kubeletHosts,
  deps: [
    // the runtime's step: one per runtime, only the inventory's has an instance on a host
    ...KUBELET_RUNTIME_DEPS,
    {
      step: "bootstrap",
      on: "all",
      why: "the bootstrap token, its RBAC and CSR auto-approval; bootstrap runs after every apiserver, so a kubelet is never newer than an apiserver (the version-skew order)",
    },
    { step: "apiserver-proxy", on: "same-host", why: "its kubeconfigs name the node-local apiserver proxy when that is on: the proxy serves first" },
    // Not the controller-manager, although it approves and signs the kubelet's CSR: the kubelet
    // waits for its certificate itself (a watch, and the gate's node Ready), so a new node's
    // upload and start overlap the controller-manager's. A node that already runs rolls after the
    // whole control plane (plan.ts nodeRollDeps).
  ],
  group: "node-agent",
  run: runKubelet,
  units: ["kubelet"],
  binaries: [...BINARIES.kubelet, ...REQUIRED_CNI],
  certificates: (_inv, host) => [kubeletServerCert(host)],
  nodeRoll: true,
  // The role and taint are set through the API, not shipped: a change re-runs the step (no restart: no file changed).
  // The server too: kubelet.kubeconfig is the kubelet's own file, repointed by the run.
  triggers: ({ inv }, host) => {
    const { role, taint } = nodeRole({ inv, host });
    return { role, taint: String(taint), server: nodeApiserverURL(inv) };
  },
  files: ({ inv, pki, binaries }, host) => {
    const cni = [...new Set([...REQUIRED_CNI, ...binaries.group("cni")])].sort();
    const serving = leafRef(kubeletServerCert(host));
    const labels = Object.entries(host.labels).map(([k, v]) => `${k}=${v}`).join(",");
    const runtime = kubeletRuntime(inv);
    return [
      ...BINARIES.kubelet.map((b) => binary(K8S.bin, b)),
      // CNI plugins and config are read per pod, not by the kubelet at start
      ...cni.map((n) => ({ ...binary("/opt/cni/bin", n), live: true })),
      { ...flannelCniConfig(), live: true },
      cert(`${K8S.ssl}/ca.pem`, pki.cas.ca.certPem),
      kubeletConf({ name: host.name, address: host.address, runtime, nodeLabels: labels, extraArgs: inv.kubelet.extraArgs }),
      kubeletConfig({ clusterDNS: inv.network.clusterDNS, clusterDomain: inv.network.clusterDomain, failSwapOn: inv.kubelet.failSwapOn }),
      cert(`${K8S.ssl}/kubelet-server.pem`, serving.certPem),
      secret(`${K8S.ssl}/kubelet-server-key.pem`, serving.keyPem),
      unit("kubelet", "kubelet/kubelet.service", { runtimeUnit: runtime.unit }),
    ];
  },
};
