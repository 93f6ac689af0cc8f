// Every Switchyard the tests start (in process or as a child) keeps its runtime files (overrides,
// shadow stores) in one temporary state directory, removed after the run: never in the repository,
// never in the machine's real state directory.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "switchyard-test-state-"));
  process.env.SWITCHYARD_STATE_DIR = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
