import { defineConfig } from "vitest/config";

// pool "forks": native addons and worker threads do not mix well (ARCHITECTURE.md).
export default defineConfig({
  test: {
    pool: "forks",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
