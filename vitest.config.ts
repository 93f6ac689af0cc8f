import { defineConfig } from "vitest/config";

// Two projects: fast pure-logic unit tests, and socket-level integration tests with real servers.
export default defineConfig({
  test: {
    globalSetup: ["test/setup/state-dir.ts"],
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"] } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts", "test/regressions/**/*.test.ts", "test/battery/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
});
