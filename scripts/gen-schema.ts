// Writes config/switchyard.schema.json from the zod schema, for editor completion and hover docs
// (`# yaml-language-server: $schema=./switchyard.schema.json`). A test fails when it is stale.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configJsonSchema } from "../src/config/json-schema.ts";

const out = fileURLToPath(new URL("../config/switchyard.schema.json", import.meta.url));
writeFileSync(out, configJsonSchema());
process.stdout.write(`wrote ${out}\n`);
