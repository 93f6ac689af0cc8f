// One Switchyard as its own process (a replica: `switchyard start -c FILE --state-file F`): its listener
// and admin URLs from its start-up log, every log line it writes parsed, and the ways it can end.
import { spawn, type ChildProcess } from "node:child_process";

export interface Replica {
  url: string;
  admin: string;
  pid: number;
  /** Its log lines so far (JSON, as written to stdout). */
  logs: Record<string, unknown>[];
  /** SIGKILL: a crash (nothing released, no lease given back). */
  crash(): Promise<void>;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

const cli = new URL("../../src/cli/main.ts", import.meta.url).pathname;

export function spawnReplica(file: string, stateFile: string): Promise<Replica> {
  return spawnSwitchyard(["start", "-c", file, "--state-file", stateFile]);
}

/** `switchyard ARGS` (a command that serves: start, demo) from the sources, or from `entry` (the build). */
export function spawnSwitchyard(args: string[], opts: { entry?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Replica> {
  const child: ChildProcess = spawn(process.execPath, [opts.entry ?? cli, ...args], { stdio: ["ignore", "pipe", "inherit"], env: opts.env ?? process.env });
  const logs: Record<string, unknown>[] = [];
  let partial = "";
  const ended = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.stdout!.on("data", (d: Buffer) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop()!;
    for (const line of lines) if (line.trim().startsWith("{")) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  const end = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return ended;
  };
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearInterval(poll);
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${why}: ${JSON.stringify(logs.slice(-5))}`));
    };
    const timer = setTimeout(() => fail("replica did not start in 15 s"), 15_000);
    void ended.then((code) => fail(`replica exited ${code} at start`));
    const poll = setInterval(() => {
      const url = (logs.find((l) => l.msg === "switchyard started")?.listeners as string[] | undefined)?.[0];
      const admin = logs.find((l) => l.msg === "admin API listening")?.admin as string | undefined;
      if (url === undefined || admin === undefined) return;
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ url, admin, pid: child.pid!, logs, crash: async () => void (await end("SIGKILL")), stop: () => end("SIGTERM") });
    }, 20);
  });
}
