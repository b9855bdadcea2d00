// Which binaries each component needs, by name inside the binary source. Names with a folder
// ("docker/dockerd", "cni/bridge") are groups: the runtime and CNI ship whatever their folder holds.

export const BINARIES = {
  etcd: ["etcd", "etcdctl"],
  apiserver: ["kube-apiserver", "kubectl"],
  controllerManager: ["kube-controller-manager"],
  scheduler: ["kube-scheduler"],
  kubelet: ["kubelet"],
  kubeProxy: ["kube-proxy"],
} as const;

/**
 * The node-local apiserver proxy's group: haproxy itself, and beside it every shared library it
 * needs that a minimal host may lack (Debian bookworm's haproxy: liblua5.3.so.0,
 * libopentracing-c-wrapper.so.0, libopentracing.so.1). The rest of haproxy/ ships as found, into
 * a private library directory (steps/apiserver-proxy.ts).
 */
export const HAPROXY = "haproxy/haproxy";
export const HAPROXY_GROUP = "haproxy";

/** Members of the runtime group that must be present (the rest of docker/ ships as found). */
export const REQUIRED_DOCKER = ["docker/dockerd", "docker/docker", "docker/containerd", "docker/runc"];
/** CNI plugins the flannel config chains (flannel delegates to bridge, which needs host-local). */
export const REQUIRED_CNI = ["cni/flannel", "cni/bridge", "cni/host-local", "cni/loopback", "cni/portmap"];
