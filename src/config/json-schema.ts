// JSON Schema of the config file's input side (what a person writes), generated from the zod schema.
import { z } from "zod";
import { ConfigSchema } from "./schema.ts";

export function configJsonSchema(): string {
  const schema = z.toJSONSchema(ConfigSchema, { io: "input", unrepresentable: "any" });
  return `${JSON.stringify({ ...schema, title: "Switchyard configuration", $id: "https://switchyard.dev/schema/switchyard.schema.json" }, null, 2)}\n`;
}
