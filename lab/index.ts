// Public surface of the lab (local systemd-nspawn test hosts).
export { labUp, labDown, labStatus, loadLab, sshArgs, baseRootfsPath, LabPreconditionError } from "./lab";
export type { LabUpOptions, LabDirOptions, LabStatus, LabHostStatus, LabDownResult, LabHost, LabState } from "./lab";
export { labCommand } from "./cli";
export { preflight, INSTALL_COMMAND } from "./preflight";
export type { PreflightResult } from "./preflight";
