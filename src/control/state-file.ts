// Runtime overrides on disk, written so that a crash never leaves a torn file: write a temp file,
// fsync it, rename it over the old one, fsync the directory. By default they live in the state
// directory, never beside the config (a config is often in a repository or a read-only ConfigMap).
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, extname, join, resolve } from "node:path";
import type { GuardState } from "../guard/evaluate.ts";
import type { OverrideEntry, OverrideKey } from "./overrides.ts";

interface StateFile {
  version: 1;
  overrides: Record<OverrideKey, OverrideEntry>;
  /** Guard and schedule state per feature (paused, awaiting approval, when the step began). */
  guard?: Record<string, GuardState>;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Where runtime files (overrides, the shadow store) go by default: $SWITCHYARD_STATE_DIR, else
 * systemd's $STATE_DIRECTORY, else /var/lib/switchyard for root, else $XDG_STATE_HOME/switchyard
 * (~/.local/state/switchyard).
 */
export function stateDir(env: Env = process.env): string {
  if (env.SWITCHYARD_STATE_DIR) return resolve(env.SWITCHYARD_STATE_DIR);
  if (env.STATE_DIRECTORY) return resolve(env.STATE_DIRECTORY.split(":")[0]!);
  if (process.getuid?.() === 0) return "/var/lib/switchyard";
  return join(env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "switchyard");
}

/**
 * A config's runtime file in the state directory: `/etc/switchyard/prod.yaml` ->
 * `<state dir>/prod-<8 hex of the config's absolute path><suffix>`, so two configs of the same name
 * never share state.
 */
export function runtimeFileFor(configFile: string, suffix: string, env: Env = process.env): string {
  const abs = resolve(configFile);
  const tag = createHash("sha256").update(abs).digest("hex").slice(0, 8);
  return join(stateDir(env), `${basename(abs, extname(abs))}-${tag}${suffix}`);
}

/** The default state file of a config (admin.state_file or --state-file choose another). */
export function stateFileFor(configFile: string, env: Env = process.env): string {
  return runtimeFileFor(configFile, ".state.json", env);
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
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
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
