// `switchyard import` against the real thing: a real nginx serves its config in front of two stamping
// backends, `nginx -T | switchyard import -` (the CLI as a user runs it) writes the Switchyard config,
// `switchyard check` accepts it, and the same requests through both land on the same backend for every
// fixed-target route and in the same proportions for the splits.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { parseConfigText } from "../../src/config/load.ts";
import { json, send } from "../helpers/client.ts";
import { NGINX, startNginx, type Nginx } from "../helpers/nginx.ts";
import { closedPort, stampingBackends, startProxyWithConfig, type TestProxy } from "../helpers/servers.ts";

const CLI = new URL("../../src/cli/main.ts", import.meta.url).pathname;

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** nginx -T of the running config, through `switchyard import -`, then `switchyard check`. */
function importThroughCli(nginx: Nginx): { yaml: string; stderr: string } {
  const dump = spawnSync(NGINX, ["-T", "-p", dirname(nginx.file), "-c", nginx.file, "-e", "stderr"], { encoding: "utf8" });
  expect(dump.status, dump.stderr).toBe(0);
  const out = join(mkdtempSync(join(tmpdir(), "switchyard-import-")), "switchyard.yaml");
  const imported = spawnSync(process.execPath, [CLI, "import", "-", "-o", out], { input: dump.stdout, encoding: "utf8" });
  expect(imported.status, imported.stderr).toBe(0);
  const check = spawnSync(process.execPath, [CLI, "check", "-c", out], { encoding: "utf8" });
  expect(check.status, check.stderr).toBe(0);
  return { yaml: readFileSync(out, "utf8"), stderr: imported.stderr };
}

/** The imported config on free ports (nginx holds the one it names). */
async function startImported(yaml: string): Promise<TestProxy> {
  const doc = parseDocument(yaml);
  doc.setIn(["listeners", 0, "port"], 0);
  doc.setIn(["admin"], doc.createNode({ port: 0 }));
  const loaded = parseConfigText(doc.toString(), "imported.yaml", {});
  if (!loaded.ok) throw new Error(loaded.errors.map((e) => e.format()).join("\n"));
  const proxy = await startProxyWithConfig(loaded.config);
  cleanup.push(() => proxy.close());
  return proxy;
}

const backendOf = async (base: string, path: string, cookie?: string) => {
  const r = await send(base, { path, headers: cookie ? { cookie } : {} });
  expect(r.status, `${base}${path}`).toBe(200);
  return json(r).backend as string;
};

describe("switchyard import, checked against nginx", () => {
  it("a route-by-route migration: fixed routes, a sticky cookie split and a force cookie agree with nginx", async () => {
    const b = await stampingBackends();
    cleanup.push(() => b.close());
    const port = await closedPort();
    const nginx = await startNginx(
      `worker_processes 1;
events { worker_connections 256; }
http {
  access_log off;
  upstream flask { server 127.0.0.1:${b.legacy.port}; }
  upstream fastapi { server 127.0.0.1:${b.new.port}; }
  split_clients "\${cookie_uid}" $reports_pool { 30% fastapi; * flask; }
  map $cookie_force_backend $pool { default $reports_pool; legacy flask; new fastapi; }
  server {
    listen 127.0.0.1:${port};
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    location = /api/1/ping { proxy_pass http://fastapi; }
    location /api/1/info/ { proxy_pass http://fastapi; }
    location ^~ /api/1/history/ { proxy_pass http://flask; }
    location ~ ^/api/1/users/[^/]+/settings$ { proxy_pass http://fastapi; }
    location /api/1/reports/ { proxy_pass http://$pool; }
    location / { proxy_pass http://flask; }
  }
}
`,
      port,
    );
    cleanup.push(() => nginx.stop());
    const { yaml, stderr } = importThroughCli(nginx);
    expect(stderr).toMatch(/5 features, 1 directive not carried over/);
    expect(stderr).toMatch(/:2: events: not carried over: connection handling is Node's/);
    const proxy = await startImported(yaml);
    const ngx = `http://127.0.0.1:${port}`;

    // 120 requests on fixed-target routes (and forced ones): the same backend for every request.
    const fixed: [string, string | undefined][] = [
      ["/api/1/ping", undefined],
      ["/api/1/info/version", undefined],
      ["/api/1/history/2024/events", undefined],
      ["/api/1/users/u7/settings", undefined],
      ["/api/1/users/u7/other", undefined],
      ["/api/1/other", undefined],
      ["/", undefined],
      ["/api/1/reports/7", "force_backend=new"],
      ["/api/1/reports/7", "force_backend=legacy"],
      ["/api/1/reports/8", "uid=x; force_backend=new"],
    ];
    const seen = new Set<string>();
    for (let i = 0; i < 120; i++) {
      const [path, cookie] = fixed[i % fixed.length]!;
      const [a, s] = await Promise.all([backendOf(ngx, path, cookie), backendOf(proxy.url, path, cookie)]);
      expect(s, `${path} ${cookie ?? ""}`).toBe(a === "legacy" ? "legacy" : "new");
      seen.add(a);
    }
    expect([...seen].sort()).toEqual(["legacy", "new"]);

    // 80 users on the 30 % split: the same share on new within tolerance (the hashes differ, so
    // not the same users), and each user stays where Switchyard put them.
    let ngxNew = 0;
    let syNew = 0;
    for (let u = 0; u < 80; u++) {
      const cookie = `uid=user-${u}`;
      const [a, s] = await Promise.all([backendOf(ngx, "/api/1/reports/1", cookie), backendOf(proxy.url, "/api/1/reports/1", cookie)]);
      if (a === "new") ngxNew++;
      if (s === "new") syNew++;
      expect(await backendOf(proxy.url, "/api/1/reports/2", cookie)).toBe(s);
    }
    console.info(`[import] 30 % split: nginx put ${ngxNew}/80 users on new, Switchyard ${syNew}/80`);
    expect(Math.abs(ngxNew / 80 - 0.3)).toBeLessThan(0.15);
    expect(Math.abs(syNew / 80 - 0.3)).toBeLessThan(0.15);
  });

  it("the deployment guide's weighted upstream: 200 requests split 70/30 by both", async () => {
    const b = await stampingBackends();
    cleanup.push(() => b.close());
    const port = await closedPort();
    const nginx = await startNginx(
      `events {}
http {
  access_log off;
  upstream rotki {
    server 127.0.0.1:${b.legacy.port} weight=70;  # Flask/gevent
    server 127.0.0.1:${b.new.port} weight=30;  # FastAPI/asyncio
  }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://rotki; } }
}
`,
      port,
    );
    cleanup.push(() => nginx.stop());
    const { yaml } = importThroughCli(nginx);
    const proxy = await startImported(yaml);
    let ngxNew = 0;
    let syNew = 0;
    for (let i = 0; i < 200; i++) {
      const [a, s] = await Promise.all([backendOf(`http://127.0.0.1:${port}`, `/api/1/x/${i}`), backendOf(proxy.url, `/api/1/x/${i}`)]);
      if (a === "new") ngxNew++;
      if (s === "new") syNew++;
    }
    // nginx's smooth weighted round robin is exact; Switchyard's split hashes each request id.
    console.info(`[import] 70/30 weights: nginx sent ${ngxNew}/200 requests to new, Switchyard ${syNew}/200`);
    expect(ngxNew).toBe(60);
    expect(Math.abs(syNew / 200 - 0.3)).toBeLessThan(0.1);
  });

  it("listen ssl http2 with its certificate and HSTS: both answer over HTTP/2 with the same certificate, header and backends", async () => {
    const b = await stampingBackends();
    cleanup.push(() => b.close());
    const dir = mkdtempSync(join(tmpdir(), "switchyard-import-tls-"));
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
    const ca = readFileSync(join(dir, "cert.pem"));
    const port = await closedPort();
    const nginx = await startNginx(
      `events {}
http {
  access_log off;
  upstream flask { server 127.0.0.1:${b.legacy.port}; }
  upstream fastapi { server 127.0.0.1:${b.new.port}; }
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    add_header Strict-Transport-Security "max-age=31536000" always;
    location /api/1/ping { proxy_pass http://fastapi; }
    location / { proxy_pass http://flask; }
  }
}
`,
      port,
    );
    cleanup.push(() => nginx.stop());
    const { yaml, stderr } = importThroughCli(nginx);
    expect(stderr).toMatch(/1 feature, 1 directive not carried over/); // events {}
    const proxy = await startImported(yaml);
    const over2 = async (origin: string, path: string) => {
      const session = http2.connect(origin, { ca });
      try {
        return await new Promise<{ alpn: string | false | undefined; hsts: unknown; backend: string }>((resolve, reject) => {
          const req = session.request({ ":path": path });
          let body = "";
          let headers: http2.IncomingHttpHeaders = {};
          req.on("response", (h) => (headers = h));
          req.setEncoding("utf8");
          req.on("data", (d: string) => (body += d));
          req.on("end", () => resolve({ alpn: session.alpnProtocol, hsts: headers["strict-transport-security"], backend: (JSON.parse(body) as { backend: string }).backend }));
          req.on("error", reject);
        });
      } finally {
        session.close();
      }
    };
    for (const path of ["/api/1/ping", "/api/1/ping/x", "/", "/api/1/other"]) {
      const [a, s] = await Promise.all([over2(`https://127.0.0.1:${port}`, path), over2(proxy.url.replace("http:", "https:"), path)]);
      expect(s, path).toEqual(a);
      expect(a.alpn).toBe("h2");
      expect(a.hsts).toBe("max-age=31536000");
    }
  });

  it("refuses what it cannot turn into a config, with the reason and exit 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-import-bad-"));
    const run = (args: string[], input?: string) => spawnSync(process.execPath, [CLI, "import", ...args], { input, encoding: "utf8", cwd: dir });
    const syntax = run(["-"], "http {\n  server {\n    listen 80\n  }\n}\n");
    expect(syntax.status).toBe(1);
    expect(syntax.stderr).toBe('switchyard: import: <stdin>:3: "listen" is not terminated by ";"\n');
    const one = run(["-"], "server { listen 80; location / { proxy_pass http://127.0.0.1:5042; } }");
    expect(one.status).toBe(1);
    expect(one.stderr).toMatch(/one backend \(127.0.0.1:5042\), taken as legacy: give the new one with --new URL/);
    const missing = run([join(dir, "nope.conf")]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/nope.conf: cannot read \(no such file\)/);
    const usage = run(["a.conf", "b.conf"]);
    expect(usage.status).toBe(2);
    // --new with a URL for a backend nginx does not know yet: the config starts with all on legacy.
    const ok = run(["-", "--new", "http://127.0.0.1:5043"], "server { listen 8080; location / { proxy_pass http://127.0.0.1:5042; } }");
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/new:\n {4}url: http:\/\/127.0.0.1:5043/);
  });
});
