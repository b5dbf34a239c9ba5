export { readDistEnv, isDistributed, shardRange, shardItems, shardShare, labelTokens, type DistEnv } from "./env.js";
export { initProcessGroup, isWriter, reseedRankDropout, anyRank, type ProcessGroup, type InitOptions } from "./group.js";
export { launch, parseLaunchArgs, type LaunchOptions, type LaunchResult } from "./launcher.js";
