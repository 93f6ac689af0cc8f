// Runtime overrides on disk, next to the config file, written so that a crash never leaves a torn
// file: write a temp file, fsync it, rename it over the old one, fsync the directory.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { basename, dirname, extname, join } from "node:path";
import type { GuardState } from "../guard/evaluate.ts";
import type { OverrideEntry, OverrideKey } from "./overrides.ts";

interface StateFile {
  version: 1;
  overrides: Record<OverrideKey, OverrideEntry>;
  /** Guard and schedule state per feature (paused, awaiting approval, when the step began). */
  guard?: Record<string, GuardState>;
}

/** `/etc/switchyard/switchyard.yaml` -> `/etc/switchyard/switchyard.state.json`. */
export function stateFileFor(configFile: string): string {
  return join(dirname(configFile), `${basename(configFile, extname(configFile))}.state.json`);
}

export function readState(file: string): Map<OverrideKey, OverrideEntry> {
  return new Map(Object.entries(readStateFile(file)?.overrides ?? {}));
}

export function readGuardStates(file: string): Map<string, GuardState> {
  return new Map(Object.entries(readStateFile(file)?.guard ?? {}));
}

function readStateFile(file: string): StateFile | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read runtime overrides ${file}: ${(err as Error).message}`);
  }
  let parsed: StateFile;
  try {
    parsed = JSON.parse(text) as StateFile;
  } catch (err) {
    throw new Error(`runtime overrides ${file} is not valid JSON (${(err as Error).message}); fix or remove it`);
  }
  if (parsed?.version !== 1 || typeof parsed.overrides !== "object" || parsed.overrides === null) {
    throw new Error(`runtime overrides ${file} has an unknown format (expected {"version":1,"overrides":{...}}); fix or remove it`);
  }
  return parsed;
}

export function writeState(file: string, overrides: ReadonlyMap<OverrideKey, OverrideEntry>, guard?: ReadonlyMap<string, GuardState>): void {
  const body: StateFile = { version: 1, overrides: Object.fromEntries(overrides), ...(guard && guard.size > 0 && { guard: Object.fromEntries(guard) }) };
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(body, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dir = openSync(dirname(file), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
