// kube-proxy: iptables mode, clusterCIDR = the pod range (the guide wrote the service range),
// metrics on localhost only.
import { BINARIES } from "../binaries/catalog";
import { kubeletHosts } from "../inventory/types";
import { certKubeconfig, nodeApiserverURL } from "../pki/kubeconfig";
import { K8S, binary, secret, templated, unit } from "./files";
import { StepDef, RunContext } from "./types";
import { applyUnit, checkReleaseVersion, waitActive } from "./actions";
import { shq } from "../remote/shell";

/** kube-proxy's metrics address (kube-proxy-config.yml: loopback only). */
const METRICS = { host: "127.0.0.1", port: 10249 };

/**
 * The time of kube-proxy's last rule sync, from its metrics (bash's /dev/tcp: nodes need not have
 * curl); 0 before the first. That sync comes after every start-up step that can fail (conntrack,
 * the API's Services and Endpoints), so a time proves the start is over: the 3 s crash watch is not
 * needed. Its /healthz cannot tell: v1.17 answers 200 while the proxy is still starting.
 */
export const lastSyncCommand = shq(
  `exec 3<>/dev/tcp/${METRICS.host}/${METRICS.port} && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && grep -m1 '^kubeproxy_sync_proxy_rules_last_timestamp_seconds ' <&3`,
);

async function synced(rc: RunContext): Promise<boolean> {
  const out = (await rc.sh(`bash -c ${lastSyncCommand} 2>/dev/null || true`, { allowFail: true, timeoutMs: 10_000 })).stdout.trim();
  return Number(out.split(/\s+/)[1] ?? 0) > 0;
}

async function runKubeProxy(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  await checkReleaseVersion(rc, "kube-proxy");
  const action = await applyUnit(rc, "kube-proxy", sync.changed.length > 0);
  await waitActive(rc, "kube-proxy", { serves: () => synced(rc) });
  return `${sync.changed.length} files changed, ${action}`;
}

export const kubeProxy: StepDef = {
  name: "kube-proxy",
  scope: "host",
  description: "kube-proxy: kubeconfig, config, unit",
  hosts: kubeletHosts,
  deps: [
    { step: "kubelet", on: "same-host", why: "kube-proxy reads its Node object (the node IP), which the kubelet registers: the guide's order" },
    { step: "apiserver-proxy", on: "same-host", why: "its kubeconfig names the node-local apiserver proxy when that is on: the proxy serves first" },
  ],
  group: "node-agent",
  run: runKubeProxy,
  units: ["kube-proxy"],
  binaries: BINARIES.kubeProxy,
  certificates: () => ["kube-proxy"],
  nodeRoll: true,
  files: ({ inv, pki }, host) => [
    ...BINARIES.kubeProxy.map((b) => binary(K8S.bin, b)),
    secret(`${K8S.cfg}/kube-proxy.kubeconfig`, certKubeconfig(inv, pki, "kube-proxy", "system:kube-proxy", nodeApiserverURL(inv))),
    templated(`${K8S.cfg}/kube-proxy.conf`, "kube-proxy/kube-proxy.conf", {}),
    templated(`${K8S.cfg}/kube-proxy-config.yml`, "kube-proxy/kube-proxy-config.yml", {
      name: host.name,
      podCIDR: inv.network.podCIDR,
      conntrackMaxPerCore: inv.kubeProxy.conntrackMaxPerCore,
    }),
    unit("kube-proxy", "kube-proxy/kube-proxy.service"),
  ],
};
