// The default log destination as a real process uses it: stdout, lines gathered into batches before
// sonic-boom writes them. Every line arrives, in the order written (pino's and the access log's
// alike), on a quiet proxy without waiting for more, and at exit.
import { spawn, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const logger = new URL("../../src/observe/logger.ts", import.meta.url).pathname;
const accessLog = new URL("../../src/observe/access-log.ts", import.meta.url).pathname;

const script = (body: string) => `
import { createLogger, flushLogger } from ${JSON.stringify(logger)};
import { logAccess } from ${JSON.stringify(accessLog)};
const log = createLogger({ level: "info" });
const access = (i) => logAccess(log, true, { req_id: "r" + i, method: "GET", path: "/p/" + i, status: 200, backend: "legacy", client_ip: "127.0.0.1", upstream_ms: 1, total_ms: 2, bytes_in: 0, bytes_out: 3 });
${body}`;

const lines = (out: string) => out.trim().split("\n").map((l) => JSON.parse(l) as { msg: string; req_id?: string; n?: number });

describe("log lines on stdout", () => {
  it("keep their order across pino's lines and the access log, batches and all, and all reach stdout at exit", () => {
    // 3,000 lines: several 8 KiB batches, then an exit with a partial batch pending.
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script(`for (let i = 0; i < 1000; i++) { log.info({ n: i }, "before"); access(i); log.warn({ n: i }, "after"); } process.exit(0);`)], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const got = lines(r.stdout);
    expect(got).toHaveLength(3000);
    for (let i = 0; i < 1000; i++) {
      expect(got[3 * i]).toMatchObject({ msg: "before", n: i });
      expect(got[3 * i + 1]).toMatchObject({ msg: "request", req_id: `r${i}` });
      expect(got[3 * i + 2]).toMatchObject({ msg: "after", n: i });
    }
  });

  it("lines of multi-byte characters and lines longer than a batch arrive whole and in order", () => {
    // Lines are encoded into a batch buffer as they come: a character of 2, 3 or 4 bytes must not be
    // cut at a batch's end, and a line too long for any batch goes out on its own, after the ones before it.
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script(`
      const long = (i) => "é€😀".repeat(i % 50 === 7 ? 12_000 : 1);
      for (let i = 0; i < 600; i++) logAccess(log, true, { req_id: "r" + i, method: "GET", path: "/p/" + i + "/" + long(i), status: 200, backend: "legacy", client_ip: "127.0.0.1", upstream_ms: 1, total_ms: 2, bytes_in: 0, bytes_out: 3 });
      process.exit(0);`)], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    expect(r.status, r.stderr).toBe(0);
    const got = lines(r.stdout) as { req_id: string; path?: string }[];
    expect(got).toHaveLength(600);
    for (let i = 0; i < 600; i++) {
      expect(got[i]!.req_id).toBe(`r${i}`);
      expect(got[i]!.path).toBe(`/p/${i}/${"é€😀".repeat(i % 50 === 7 ? 12_000 : 1)}`);
    }
  });

  it("a lone line on a quiet process is written without waiting for a batch to fill, and so is the next one after a quiet spell", async () => {
    // The batch's timer is armed by a line and gone once it fired: the second line must arm it again.
    const child = spawn(process.execPath, ["--input-type=module", "-e", script(`log.info("alone"); setTimeout(() => log.info("later"), 400); setInterval(() => {}, 60_000);`)], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      const out = await new Promise<string>((resolve, reject) => {
        let text = "";
        child.stdout!.on("data", (d: Buffer) => {
          text += d.toString();
          if (text.split("\n").length > 2) resolve(text);
        });
        child.once("exit", (code) => reject(new Error(`exited ${code} before writing: ${text}`)));
        // The process never exits by itself: lines held until exit would never come.
        setTimeout(() => reject(new Error(`not written while the process runs: ${JSON.stringify(text)}`)), 5000).unref();
      });
      expect(lines(out)).toMatchObject([{ msg: "alone" }, { msg: "later" }]);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
