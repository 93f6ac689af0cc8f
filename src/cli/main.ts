#!/usr/bin/env node
// switchyard: start | check | demo. Unix habits: --help, --version, errors on stderr, exit codes
// 0 (ok), 1 (config invalid or runtime failure), 2 (usage error).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Switchyard } from "../app.ts";
import { loadConfigFile } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { formatDuration, formatSize } from "../config/units.ts";
import { startSampleBackend, type SampleBackend } from "../demo/backends.ts";
import { createLogger, flushLogger } from "../observe/logger.ts";

const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
const DEMO_CONFIG = fileURLToPath(new URL("../../config/demo.yaml", import.meta.url));

const HELP = `switchyard ${VERSION} - edge proxy that moves traffic from a legacy backend to a new one

Usage:
  switchyard start -c FILE     run the proxy with FILE
  switchyard check -c FILE     validate FILE (like nginx -t): exit 0 with a summary, or 1 with every error
  switchyard demo              sample legacy and new backends on free ports with the proxy in front

Options:
  -c, --config FILE   config file (default: $SWITCHYARD_CONFIG)
  -h, --help          show this help
  -V, --version       print the version

Signals (start, demo): SIGTERM or SIGINT drain in-flight requests (shutdown.drain_timeout), then exit 0;
a second signal exits at once.

Exit codes: 0 ok, 1 invalid config or runtime failure, 2 usage error.
Docs: README.md; every config key: config/switchyard.example.yaml.`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return print(HELP);
  if (values.version) return print(VERSION);
  const [command, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const configPath = values.config ?? process.env.SWITCHYARD_CONFIG;
  switch (command) {
    case "check":
      return check(requireConfig(configPath));
    case "start":
      return start(requireConfig(configPath));
    case "demo":
      return demo();
    case undefined:
      throw new UsageError("missing command (start, check or demo)");
    default:
      throw new UsageError(`unknown command "${command}" (expected start, check or demo)`);
  }
}

function requireConfig(path: string | undefined): string {
  if (!path) throw new UsageError("missing config file: pass -c FILE or set SWITCHYARD_CONFIG");
  return path;
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}

function load(path: string): Config | null {
  const result = loadConfigFile(path);
  if (result.ok) return result.config;
  for (const e of result.errors) process.stderr.write(`${e.format()}\n`);
  process.stderr.write(`switchyard: ${path}: ${result.errors.length} error${result.errors.length === 1 ? "" : "s"}; nothing started\n`);
  return null;
}

function check(path: string): number {
  const config = load(path);
  if (!config) return 1;
  process.stdout.write(`switchyard: ${path} is valid: ${summarize(config)}\n`);
  return 0;
}

export function summarize(c: Config): string {
  const listeners = c.listeners.map((l) => `${l.tls ? "https" : "http"}://${l.host}:${l.port}`).join(", ");
  return [
    `listeners ${listeners}`,
    `legacy ${c.backends.legacy.url}`,
    `new ${c.backends.new.url}`,
    `mode ${c.routing.mode}${c.routing.kill_switch ? " (KILL SWITCH ON: everything to legacy)" : ""}`,
    `${featureSummary(c)}`,
    `default backend ${c.routing.default_backend}`,
    `admin ${c.admin.host}:${c.admin.port}`,
    `max body ${formatSize(c.limits.max_body_size)}`,
    `drain ${formatDuration(c.shutdown.drain_timeout)}`,
  ].join("; ");
}

function featureSummary(c: Config): string {
  const features = Object.values(c.features);
  const enabled = features.filter((f) => f.enabled).length;
  return `${features.length} feature${features.length === 1 ? "" : "s"} (${enabled} enabled)`;
}

async function start(path: string): Promise<number> {
  const config = load(path);
  if (!config) return 1;
  const logger = createLogger({ level: config.log.level });
  const app = await Switchyard.start(config, { logger });
  return untilSignal(app, logger, []);
}

async function demo(): Promise<number> {
  const backends = [await startSampleBackend("legacy"), await startSampleBackend("new")];
  process.env.LEGACY_URL = backends[0]!.url;
  process.env.NEW_URL = backends[1]!.url;
  const config = load(DEMO_CONFIG);
  if (!config) return 1;
  const logger = createLogger({ level: config.log.level });
  let app: Switchyard;
  try {
    app = await Switchyard.start(config, { logger });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    // Port 8080 taken: any free port will do for a demo.
    const listeners = config.listeners.map((l) => ({ ...l, port: 0 }));
    app = await Switchyard.start({ ...config, listeners }, { logger });
  }
  const proxy = app.urls[0]!;
  process.stdout.write(
    `\nSwitchyard demo is running\n` +
      `  proxy    ${proxy}/   try: curl -i ${proxy}/api/1/ping\n` +
      `  legacy   ${backends[0]!.url}/   sample Flask-style backend\n` +
      `  new      ${backends[1]!.url}/   sample FastAPI-style backend\n` +
      `  config   ${DEMO_CONFIG}\n` +
      `Access log follows (JSON lines). Ctrl+C stops.\n\n`,
  );
  return untilSignal(app, logger, backends);
}

function untilSignal(app: Switchyard, logger: ReturnType<typeof createLogger>, backends: SampleBackend[]): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, "second signal: exiting now");
        flushLogger(logger);
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, "signal received: shutting down");
      app
        .shutdown()
        .then(() => Promise.all(backends.map((b) => b.close())))
        .then(() => {
          flushLogger(logger);
          resolve(0);
        });
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`switchyard: ${err.message}\nTry 'switchyard --help'.\n`);
      process.exitCode = 2;
      return;
    }
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === "EADDRINUSE" ? " (another process holds this port; change listeners[].port)" : e.code === "EACCES" ? " (ports below 1024 need privileges)" : "";
    process.stderr.write(`switchyard: ${e.message}${hint}\n`);
    process.exitCode = 1;
  },
);
