export { readDistEnv, isDistributed, shardRange, shardItems, type DistEnv } from "./env.js";
export { initProcessGroup, isWriter, type ProcessGroup, type InitOptions } from "./group.js";
export { launch, parseLaunchArgs, type LaunchOptions, type LaunchResult } from "./launcher.js";
