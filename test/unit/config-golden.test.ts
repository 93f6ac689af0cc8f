// Golden files: each test/fixtures/config/NAME.yaml has NAME.expected holding either the loaded config
// (defaults applied, units converted) as JSON, or the exact error lines. UPDATE_GOLDEN=1 rewrites them.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfigFile } from "../../src/config/load.ts";

const dir = join(import.meta.dirname, "../fixtures/config");
const env = { NEW_PORT: "5043", ASYNC_DB_TIMEOUT: "7", LEGACY_POOL: "" };

function render(file: string): string {
  const result = loadConfigFile(join(dir, file), env);
  if (result.ok) return `${JSON.stringify(result.config, null, 2)}\n`;
  return `${result.errors.map((e) => e.format().replace(join(dir, file), basename(file)).replaceAll(dir, "<fixtures>")).join("\n")}\n`;
}

describe("config golden files", () => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml"));
  it("has fixtures", () => expect(files.length).toBeGreaterThan(8));
  for (const file of files) {
    it(file, () => {
      const expectedPath = join(dir, file.replace(/\.yaml$/, ".expected"));
      const actual = render(file);
      if (process.env.UPDATE_GOLDEN) writeFileSync(expectedPath, actual);
      expect(actual).toBe(readFileSync(expectedPath, "utf8"));
    });
  }
});
