// The shipped config files: the example documents every key and loads; the JSON Schema is current.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configJsonSchema } from "../../src/config/json-schema.ts";
import { loadConfigFile } from "../../src/config/load.ts";

const root = new URL("../../config/", import.meta.url);
const read = (name: string) => readFileSync(new URL(name, root), "utf8");

type JsonSchema = { properties?: Record<string, JsonSchema>; items?: JsonSchema; anyOf?: JsonSchema[] };

function keyPaths(schema: JsonSchema, prefix = ""): string[] {
  const out: string[] = [];
  const visit = (s: JsonSchema, p: string) => {
    if (s.items) visit(s.items, p);
    for (const alt of s.anyOf ?? []) visit(alt, p);
    for (const [k, v] of Object.entries(s.properties ?? {})) {
      out.push(p ? `${p}.${k}` : k);
      visit(v, p ? `${p}.${k}` : k);
    }
  };
  visit(schema, prefix);
  return out;
}

describe("shipped config files", () => {
  it("config/switchyard.schema.json is generated from the zod schema (run `npm run schema`)", () => {
    expect(read("switchyard.schema.json")).toBe(configJsonSchema());
  });

  it("the example loads cleanly", () => {
    const result = loadConfigFile(new URL("switchyard.example.yaml", root).pathname, {});
    expect(result.ok ? [] : result.errors.map((e) => e.format())).toEqual([]);
  });

  it("the example documents every key of the schema", () => {
    const example = read("switchyard.example.yaml");
    const schema = JSON.parse(read("switchyard.schema.json")) as JsonSchema;
    const paths = keyPaths(schema);
    expect(paths.length).toBeGreaterThan(25);
    const undocumented = paths.filter((p) => !new RegExp(`^\\s*#?\\s*(- )?${p.split(".").pop()}:`, "m").test(example));
    expect(undocumented).toEqual([]);
  });

  it("the demo config loads when its backends are given", () => {
    const result = loadConfigFile(new URL("demo.yaml", root).pathname, { LEGACY_URL: "http://127.0.0.1:1", NEW_URL: "http://127.0.0.1:2" });
    expect(result.ok ? [] : result.errors.map((e) => e.format())).toEqual([]);
  });
});
