// What the kubelet and the container runtime must agree on, in one place that both steps read
// (neither imports the other's module).

/** The cgroup driver docker and the kubelet agree on (docker's daemon.json says the same). */
export const CGROUP_DRIVER = "cgroupfs";
