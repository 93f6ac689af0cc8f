// The process that builds comparison reports for the admin API (forked by runner.ts at the lowest CPU
// priority), so a report over a day of pairs neither holds up the proxy's event loop nor takes the
// CPU it needs, and its memory is its own. One request at a time; each opens the stores read-only
// (WAL lets it read while the store's worker writes) and closes them when done.
import { DatabaseSync } from "node:sqlite";
import { buildReport, type Report, type ReportOptions } from "./build.ts";

export type ReportRequest = { id: number; paths: string[]; opts: ReportOptions };
export type ReportReply = { id: number; report: Report } | { id: number; error: string };

process.on("message", (m: ReportRequest) => {
  const dbs: DatabaseSync[] = [];
  let reply: ReportReply;
  try {
    for (const path of m.paths) dbs.push(new DatabaseSync(path, { readOnly: true }));
    reply = { id: m.id, report: buildReport(dbs, m.opts) };
  } catch (err) {
    reply = { id: m.id, error: (err as Error).message };
  } finally {
    for (const db of dbs) db.close();
  }
  process.send!(reply);
});
// The proxy went away: nothing left to build for.
process.on("disconnect", () => process.exit(0));
