// The decision, comparison and config-compile modules stay pure: no HTTP stack, no logger, no metrics.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const src = new URL("../../src/", import.meta.url).pathname;
const FORBIDDEN = /from\s+["'](node:http|node:https|node:http2|node:net\/?|node:fs|undici|pino|prom-client|ws)["']/;
const PURE_DIRS = ["routing"];
const PURE_FILES = ["config/compile.ts", "config/schema.ts", "config/routing-schema.ts", "config/health-schema.ts", "config/units.ts", "config/interpolate.ts", "health/state.ts", "health/budget.ts"];

function files(): string[] {
  const out = [...PURE_FILES];
  for (const dir of PURE_DIRS) for (const f of readdirSync(join(src, dir))) if (f.endsWith(".ts")) out.push(`${dir}/${f}`);
  return out;
}

describe("purity", () => {
  it.each(files())("%s imports no I/O module", (file) => {
    const imports = readFileSync(join(src, file), "utf8").split("\n").filter((l) => FORBIDDEN.test(l));
    expect(imports).toEqual([]);
  });
});
