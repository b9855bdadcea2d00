// What an operator needs when a DaemonSet or Deployment does not get ready: which node's pod is
// stuck, and why (the waiting reason, the last exit, restarts). Parsed from `kubectl get pods -o json`.

interface ContainerStatus {
  name: string;
  ready: boolean;
  restartCount: number;
  state?: { waiting?: { reason?: string; message?: string }; terminated?: { reason?: string; exitCode?: number } };
  lastState?: { terminated?: { reason?: string; exitCode?: number } };
}
interface Pod {
  metadata: { name: string };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

export interface PodReadiness {
  /** node name → pod name of the ready pods */
  ready: Map<string, string>;
  /** one line per pod that is not ready: "lab2: kube-flannel-ds-x Pending, kube-flannel CrashLoopBackOff (restarts 4, last exit 1)" */
  notReady: { node: string; pod: string; line: string }[];
}

function containerLine(c: ContainerStatus): string | undefined {
  if (c.ready) return undefined;
  const why = c.state?.waiting?.reason ?? (c.state?.terminated ? `terminated ${c.state.terminated.reason ?? ""} exit ${c.state.terminated.exitCode ?? "?"}` : "running, not ready");
  const last = c.lastState?.terminated ? `, last exit ${c.lastState.terminated.exitCode ?? "?"}` : "";
  const message = c.state?.waiting?.message ? `: ${c.state.waiting.message.split("\n")[0]!.slice(0, 200)}` : "";
  return `${c.name} ${why} (restarts ${c.restartCount}${last})${message}`;
}

export function podReadiness(json: string): PodReadiness {
  const pods = (JSON.parse(json) as { items: Pod[] }).items;
  const out: PodReadiness = { ready: new Map(), notReady: [] };
  for (const p of pods) {
    const node = p.spec.nodeName ?? "(unscheduled)";
    const ready = p.status.conditions?.find((c) => c.type === "Ready")?.status === "True";
    if (ready) {
      out.ready.set(node, p.metadata.name);
      continue;
    }
    const scheduled = p.status.conditions?.find((c) => c.type === "PodScheduled");
    const parts = [
      ...(p.status.initContainerStatuses ?? []).filter((c) => !c.ready && c.state?.terminated?.exitCode !== 0).map((c) => `init ${containerLine(c)}`),
      ...(p.status.containerStatuses ?? []).map(containerLine).filter((l): l is string => l !== undefined),
    ];
    if (scheduled?.status === "False") parts.push(`not scheduled: ${scheduled.message ?? scheduled.reason ?? ""}`);
    out.notReady.push({ node, pod: p.metadata.name, line: `${node}: ${p.metadata.name} ${p.status.phase ?? "Unknown"}${parts.length ? `, ${parts.join("; ")}` : ""}` });
  }
  return out;
}
