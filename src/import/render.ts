// The imported config as a YAML file a person can read: where it came from, the choices made, and
// every nginx directive not carried over (file:line, why) as the header comment.
import { Document } from "yaml";
import type { ImportResult } from "./nginx-import.ts";

export function renderImport(result: ImportResult, source: string, date: Date): string {
  const head = [
    ` Switchyard config imported from ${source} by \`switchyard import\` on ${date.toISOString().slice(0, 10)}.`,
    " Check it with `npx switchyard check -c FILE`; every key and its default: config/switchyard.example.yaml.",
    "",
    " Decisions made:",
    ...result.decisions.map((d) => `   - ${d}`),
    "",
    result.skipped.length === 0 ? " Every directive was carried over." : ` Not carried over (${result.skipped.length}):`,
    ...result.skipped.map((s) => `   - ${s.file}:${s.line}: ${s.directive}: ${s.why}`),
  ];
  // The config loader reads ${NAME} as the environment: a literal one from nginx is written $${.
  const doc = new Document(JSON.parse(JSON.stringify(result.config).replaceAll("${", "$${")));
  doc.commentBefore = head.join("\n");
  return doc.toString({ lineWidth: 0 });
}

/** One line per directive not carried over, for stderr. */
export function skippedLines(result: ImportResult): string[] {
  return result.skipped.map((s) => `${s.file}:${s.line}: ${s.directive}: not carried over: ${s.why}`);
}
