// instill's public API.
export { loadAddon, setThreads, AddonLoadError } from "./native/binding.js";
export type { Addon, HostTensor, Dtype, RuntimeInfo, ProgressEvent } from "./native/types.js";
export { doctor } from "./cli/doctor.js";
