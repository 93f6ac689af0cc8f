// A real Prometheus server (Debian's package) on a free loopback port, its TSDB in a temp directory,
// scraping the given targets every second. Missing binary: the suite fails loudly (CI installs it;
// `apt-get install prometheus`).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closedPort } from "./servers.ts";

export interface PrometheusServer {
  url: string;
  /** Resolves once every target has been scraped successfully at least `times` times. */
  scraped(times?: number): Promise<void>;
  stop(): Promise<void>;
}

export function requirePrometheus(): void {
  if (spawnSync("sh", ["-c", "command -v prometheus"]).status !== 0) {
    throw new Error("prometheus is not installed: the guard's Prometheus source is tested against a real one (apt-get install prometheus; .ci/run installs it)");
  }
}

/**
 * `targets`: host:port of each /metrics to scrape (job "switchyard", 1 s interval); `port` default: a
 * free one; `configText`: a whole prometheus.yml of the caller's instead (its targets still listed in
 * `targets`, for scraped()).
 */
export async function startPrometheus(targets: string[], opts: { port?: number; configText?: string } = {}): Promise<PrometheusServer> {
  requirePrometheus();
  const port = opts.port ?? (await closedPort());
  const dir = mkdtempSync(join(tmpdir(), "switchyard-prometheus-"));
  const config = join(dir, "prometheus.yml");
  writeFileSync(config, opts.configText ?? `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: switchyard\n    static_configs:\n      - targets: ${JSON.stringify(targets)}\n`);
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn("prometheus", [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`prometheus exited ${code}: ${err}`))));
  exited.catch(() => {});
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (child.exitCode !== null) await exited;
    if (Date.now() > deadline) throw new Error(`prometheus did not become ready in 20 s: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async scraped(times = 2) {
      const until = Date.now() + 20_000;
      for (;;) {
        const r = (await (await fetch(`${url}/api/v1/query?query=${encodeURIComponent(`count_over_time(up{job="switchyard"}[1m])`)}`)).json()) as { data: { result: { value: [number, string] }[] } };
        const counts = r.data.result.map((x) => Number(x.value[1]));
        if (counts.length === targets.length && counts.every((n) => n >= times)) return;
        if (Date.now() > until) throw new Error(`prometheus did not scrape ${targets.join(", ")} ${times} times in 20 s (${JSON.stringify(counts)}): ${err}`);
        await new Promise((res) => setTimeout(res, 200));
      }
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
