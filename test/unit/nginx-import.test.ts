// `switchyard import`: the nginx tokenizer (quotes, comments, variables, errors with file:line),
// includes and `nginx -T` dumps, and the translation of each idiom - with every output loaded by the
// real config loader, so an import that writes an invalid config fails here.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { identityFromKey, importNginx, ImportError, nginxSize, nginxTime, regexRoute, type ImportResult } from "../../src/import/nginx-import.ts";
import { loadNginx, NginxReadError, NginxSyntaxError, parseNginx, splitDump } from "../../src/import/nginx-parse.ts";
import { renderImport } from "../../src/import/render.ts";

function imp(text: string, opts: { legacy?: string; new?: string } = {}): ImportResult & { loaded: Config; yaml: string } {
  const result = importNginx(parseNginx(text, "nginx.conf"), { ...opts, prefix: "/etc/nginx" });
  const yaml = renderImport(result, "nginx.conf", new Date("2026-12-02T00:00:00Z"));
  const loaded = parseConfigText(yaml, "imported.yaml", {});
  if (!loaded.ok) throw new Error(`imported config does not load:\n${loaded.errors.map((e) => e.format()).join("\n")}\n${yaml}`);
  return { ...result, loaded: loaded.config, yaml };
}

const skippedNames = (r: ImportResult) => r.skipped.map((s) => `${s.line}:${s.directive.split(" ")[0]}`);

describe("nginx tokenizer", () => {
  it("reads directives, blocks, quotes, escapes, comments and ${var} with their lines", () => {
    const d = parseNginx(
      [
        "# comment",
        'log_format main "a b;{c}" \'d\\\'e\';  # trailing',
        "split_clients \"${remote_addr}x\" $v {",
        "  10% a;",
        "  * b;",
        "}",
        "location ~ ^/a\\.b$ { proxy_pass http://x; }",
      ].join("\n"),
      "f.conf",
    );
    expect(d.map((x) => [x.name, x.args, x.line])).toEqual([
      ["log_format", ["main", "a b;{c}", "d'e"], 2],
      ["split_clients", ["${remote_addr}x", "$v"], 3],
      ["location", ["~", "^/a\\.b$"], 7],
    ]);
    expect(d[1]!.block!.map((x) => [x.name, x.args, x.line])).toEqual([["10%", ["a"], 4], ["*", ["b"], 5]]);
    expect(d[2]!.block![0]).toMatchObject({ name: "proxy_pass", args: ["http://x"], line: 7, file: "f.conf" });
  });

  it.each([
    ["server { listen 80;", 'f.conf:1: unexpected end of file: the "{" opened here is never closed'],
    ["listen 80", 'f.conf:1: unexpected end of file: "listen" is not terminated by ";"'],
    ["a;\n}", 'f.conf:2: unexpected "}"'],
    ['a "b;\n', "f.conf:1: unterminated double quote"],
    ["server {\n listen 80\n}", 'f.conf:2: "listen" is not terminated by ";"'],
    [";", 'f.conf:1: unexpected ";"'],
  ])("refuses %j with file:line", (text, message) => {
    expect(() => parseNginx(text, "f.conf")).toThrow(NginxSyntaxError);
    expect(() => parseNginx(text, "f.conf")).toThrow(message);
  });

  it("follows includes (globs, relative to the main file's folder) and keeps each file's lines", () => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-nginx-parse-"));
    mkdirSync(join(dir, "sites"));
    writeFileSync(join(dir, "nginx.conf"), "http {\n  include sites/*.conf;\n}\n");
    writeFileSync(join(dir, "sites", "b.conf"), "\n\nserver { listen 81; }\n");
    writeFileSync(join(dir, "sites", "a.conf"), "server { listen 80; }\n");
    const { directives, files } = loadNginx({ path: join(dir, "nginx.conf") });
    const servers = directives[0]!.block!;
    expect(servers.map((s) => [s.file.slice(dir.length), s.line, s.block![0]!.args[0]])).toEqual([
      ["/sites/a.conf", 1, "80"],
      ["/sites/b.conf", 3, "81"],
    ]);
    expect(files.map((f) => f.slice(dir.length))).toEqual(["/nginx.conf", "/sites/a.conf", "/sites/b.conf"]);
    writeFileSync(join(dir, "loop.conf"), "include loop.conf;\n");
    expect(() => loadNginx({ path: join(dir, "loop.conf") })).toThrow(/included from itself/);
    expect(() => loadNginx({ path: join(dir, "missing.conf") })).toThrow(NginxReadError);
    writeFileSync(join(dir, "gone.conf"), "http {\n  include sites/none.conf;\n}\n");
    expect(() => loadNginx({ path: join(dir, "gone.conf") })).toThrow(`${dir}/sites/none.conf: cannot read (no such file) (included from ${dir}/gone.conf:2)`);
    // A pattern that matches nothing includes nothing, as in nginx.
    writeFileSync(join(dir, "empty-glob.conf"), "http {\n  include conf.d/*.conf;\n}\n");
    expect(loadNginx({ path: join(dir, "empty-glob.conf") }).directives[0]!.block).toEqual([]);
  });

  it("reads nginx -T output: the files it printed, includes resolved among them", () => {
    const dump = [
      "# configuration file /etc/nginx/nginx.conf:",
      "http {",
      "    include /etc/nginx/conf.d/*.conf;",
      "}",
      "",
      "# configuration file /etc/nginx/conf.d/app.conf:",
      "server {",
      "    listen 8080;",
      "}",
      "",
    ].join("\n");
    expect([...splitDump(dump)!.keys()]).toEqual(["/etc/nginx/nginx.conf", "/etc/nginx/conf.d/app.conf"]);
    const { directives } = loadNginx({ text: dump, label: "<stdin>" });
    expect(directives[0]!.block![0]).toMatchObject({ name: "server", file: "/etc/nginx/conf.d/app.conf", line: 1 });
    expect(splitDump("http {}")).toBeNull();
  });
});

describe("nginx units and patterns", () => {
  it.each([["60", 60_000], ["60s", 60_000], ["1m30s", 90_000], ["500ms", 500], ["1h", 3_600_000], ["2d", 172_800_000], ["x", null], ["1q", null]])("time %s", (t, ms) => {
    expect(nginxTime(t)).toBe(ms);
  });
  it.each([["10m", 10 * 1024 ** 2], ["8k", 8192], ["1G", 1024 ** 3], ["512", 512], ["0", 0], ["1.5m", null], ["10mb", null]])("size %s", (t, n) => {
    expect(nginxSize(t)).toBe(n);
  });
  it.each([
    ["^/api/1/users/[^/]+/settings$", "/api/1/users/*/settings"],
    ["^/api/1/users/([^/]+)$", "/api/1/users/*"],
    ["^/api/(\\d+)/x$", "/api/*/x"],
    ["^/static/.*", "/static/**"],
    ["^/static/(.*)$", "/static/**"],
    ["^/api/", "/api/**"],
    ["^/api/v1\\.0/ping$", "/api/v1.0/ping"],
    ["^/api", null],
    ["\\.(png|css)$", null],
    ["^/a/(b|c)$", null],
    ["^/a/b+$", null],
  ])("regex location %s -> %s", (re, route) => {
    expect(regexRoute(re)).toBe(route);
  });
  it.each([
    ["${cookie_session_user}", { cookie: "session_user" }],
    ["$http_x_user_id", { header: "X-User-Id" }],
    ["$arg_uid", { query: "uid" }],
    ["${remote_addr}AAA", "client_ip"],
    ["$request_id", "per_request"],
    ["${remote_addr}${http_user_agent}", null],
    ["$uri", null],
  ])("split key %s", (key, source) => {
    expect(identityFromKey(key)).toEqual(source);
  });
});

describe("nginx import", () => {
  it("the deployment guide's weighted upstream: per-request 70/30, failover on as nginx's next-upstream", () => {
    const r = imp(`events {}
http {
  upstream rotki {
    server 127.0.0.1:5042 weight=70;  # Flask/gevent
    server 127.0.0.1:5043 weight=30;  # FastAPI/asyncio
  }
  server { listen 8080; location / { proxy_pass http://rotki; } }
}`);
    expect(r.loaded.backends.legacy.url).toBe("http://127.0.0.1:5042");
    expect(r.loaded.backends.new.url).toBe("http://127.0.0.1:5043");
    expect(r.loaded.features.all).toMatchObject({ routes: ["/**"], target: { percent: 30 }, unidentified: { legacy: 70, new: 30 } });
    expect(r.loaded.routing.identity.sources).toEqual([]);
    expect(r.loaded.failover.enabled).toBe(true);
    expect(r.loaded.listeners).toMatchObject([{ host: "0.0.0.0", port: 8080 }]);
    expect(r.loaded.limits.max_body_size).toBe(1024 ** 2);
    expect(r.loaded.proxy.preserve_host).toBe(false);
    expect(skippedNames(r)).toEqual(["1:events"]);
    expect(r.decisions.join("\n")).toMatch(/legacy = 127.0.0.1:5042 \(first server of upstream rotki\)/);
    // --legacy / --new swap the roles; an address that is no server of it is refused.
    const swapped = imp(`upstream rotki { server 127.0.0.1:5042 weight=70; server 127.0.0.1:5043 weight=30; }
server { listen 8080; location / { proxy_pass http://rotki; } }`, { legacy: "127.0.0.1:5043", new: "127.0.0.1:5042" });
    expect(swapped.loaded.features.all).toMatchObject({ target: { percent: 70 } });
    expect(() => imp(`upstream rotki { server 127.0.0.1:5042 weight=70; server 127.0.0.1:5043 weight=30; }
server { listen 8080; location / { proxy_pass http://rotki; } }`, { legacy: "10.0.0.1:1" })).toThrow(/--legacy 10.0.0.1:1: not a server of upstream rotki/);
  });

  const rotki = `
http {
  client_max_body_size 20m;
  proxy_read_timeout 90;
  upstream flask { server 127.0.0.1:5042 max_fails=3 fail_timeout=20s; keepalive 16; }
  upstream fastapi { server 127.0.0.1:5043; }
  split_clients "\${cookie_session_user}" $reports_pool { 10% fastapi; * flask; }
  map $cookie_force_backend $pool { default $reports_pool; legacy flask; new fastapi; }
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:8080;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Tenant acme;
    location = /api/1/ping { proxy_pass http://fastapi; }
    location /api/1/info/ { proxy_pass http://fastapi; }
    location ~ ^/api/1/users/[^/]+/settings$ { proxy_pass http://fastapi; }
    location ^~ /api/1/reports/ { proxy_pass http://$pool; }
    location /ws/ {
      proxy_pass http://flask;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
    }
    location /static/ { root /srv; }
    location /v2/ { proxy_pass http://fastapi/; }
    location / { proxy_pass http://flask; }
  }
}`;

  it("two upstreams: fixed routes, a sticky split by cookie, a force cookie, per-location settings", () => {
    const r = imp(rotki);
    const c = r.loaded;
    expect(c.backends.legacy.url).toBe("http://127.0.0.1:5042");
    expect(c.backends.new.url).toBe("http://127.0.0.1:5043");
    expect(r.decisions[0]).toMatch(/^legacy = upstream flask .*by its name/);
    expect(c.routing.default_backend).toBe("legacy");
    expect(Object.fromEntries(Object.entries(c.features).map(([k, f]) => [k, [f.routes, f.target]]))).toEqual({
      api_1_ping: [["/api/1/ping"], "new"],
      api_1_info: [["/api/1/info/**"], "new"],
      api_1_users_settings: [["/api/1/users/*/settings"], "new"],
      api_1_reports: [["/api/1/reports/**"], { percent: 10 }],
      ws: [["/ws/**"], "legacy"],
    });
    expect(c.routing.identity.sources).toEqual([{ cookie: "session_user" }]);
    expect(c.routing.force).toMatchObject({ enabled: true, cookie: "force_backend", trusted_cidrs: ["0.0.0.0/0", "::/0"] });
    expect(c.limits.max_body_size).toBe(20 * 1024 ** 2);
    expect(c.backends.legacy.timeouts.read).toBe(90_000);
    expect(c.backends.legacy.timeouts.response_header).toBe(90_000);
    expect(c.websocket.idle_timeout).toBe(3_600_000);
    expect(c.backends.legacy.health.passive).toMatchObject({ consecutive_failures: 3, window: 20_000, ejection: 20_000 });
    expect(c.failover.enabled).toBe(false);
    expect(c.proxy.preserve_host).toBe(true);
    // Not carried over, each with its line: the custom header, keepalive, the file location, the
    // path-rewriting proxy_pass. The WebSocket idiom (map, Upgrade, Connection, HTTP/1.1) is built in.
    expect(skippedNames(r)).toEqual(["5:keepalive", "14:proxy_set_header", "26:location", "27:proxy_pass"]);
    expect(r.skipped.find((s) => s.line === 27)!.why).toMatch(/rewrites the path|replaces "\/v2\/"/);
    expect(r.decisions.join("\n")).toMatch(/location \/ws\/ .*no proxy_set_header Host \$host in effect there \(a location's own proxy_set_header drops every one it would inherit\)/);
    expect(r.yaml).toMatch(/^# Switchyard config imported from nginx.conf/);
    expect(r.yaml).toContain("#   - nginx.conf:14: proxy_set_header X-Tenant acme: Switchyard adds no request headers");
  });

  it("chooses legacy and new from location / when names do not tell, and from --legacy/--new when given", () => {
    const text = `upstream a { server 10.0.0.1:80; }
upstream b { server 10.0.0.2:80; }
server { listen 80; location /x/ { proxy_pass http://a; } location / { proxy_pass http://b; } }`;
    const r = imp(text);
    expect(r.loaded.backends.legacy.url).toBe("http://10.0.0.2:80");
    expect(r.loaded.features.x!.target).toBe("new");
    expect(r.decisions[0]).toMatch(/serves location \//);
    const given = imp(text, { legacy: "a", new: "b" });
    expect(given.loaded.backends.legacy.url).toBe("http://10.0.0.1:80");
    expect(given.loaded.routing.default_backend).toBe("new");
  });

  it("one backend in nginx: refused without --new, and with it every route stays on legacy", () => {
    const text = "server { listen 80; location / { proxy_pass http://127.0.0.1:5042; } }";
    expect(() => imp(text)).toThrow(ImportError);
    expect(() => imp(text)).toThrow("the nginx config proxies to one backend (127.0.0.1:5042), taken as legacy: give the new one with --new URL (e.g. --new http://127.0.0.1:5043)");
    const r = imp(text, { new: "http://127.0.0.1:5043" });
    expect(r.loaded.backends.new.url).toBe("http://127.0.0.1:5043");
    expect(r.loaded.routing.default_backend).toBe("legacy");
    expect(Object.keys(r.loaded.features)).toEqual([]);
    expect(() => imp("http { server { listen 80; root /srv; } }")).toThrow(/no location with proxy_pass/);
  });

  it("mirror becomes shadow toward the mirror's backend; TLS, HTTP/2, SNI, dual stack, HSTS, workers", () => {
    // The loader checks that certificate files are readable: these stand in for them.
    const dir = mkdtempSync(join(tmpdir(), "switchyard-import-tls-"));
    for (const f of ["api.pem", "api.key", "admin.pem", "admin.key"]) writeFileSync(join(dir, f), "-");
    const r = imp(`worker_processes 4;
http {
  upstream legacy { server 127.0.0.1:5042; }
  upstream new { server 127.0.0.1:5043; }
  server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name api.example.com;
    ssl_certificate ${dir}/api.pem;
    ssl_certificate_key ${dir}/api.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;
    location /api/ { proxy_pass http://legacy; mirror /mirror; mirror_request_body on; }
    location = /mirror { internal; proxy_pass http://new$request_uri; }
    location / { proxy_pass http://legacy; }
  }
  server {
    listen 443 ssl;
    server_name admin.example.com;
    ssl_certificate ${dir}/admin.pem;
    ssl_certificate_key ${dir}/admin.key;
    location / { proxy_pass http://new; }
  }
  server { listen 80; server_name _; return 301 https://$host$request_uri; }
}`);
    const c = r.loaded;
    expect(c.workers).toBe(4);
    expect(c.listeners).toHaveLength(1);
    expect(c.listeners[0]).toMatchObject({ host: "::", port: 443, http2: true, tls: { cert: `${dir}/api.pem`, key: `${dir}/api.key`, hsts: "max-age=31536000; includeSubDomains", min_version: "TLSv1.2" } });
    expect(c.listeners[0]!.tls!.sni).toEqual([{ names: ["admin.example.com"], cert: `${dir}/admin.pem`, key: `${dir}/admin.key` }]);
    // Two proxying server blocks: their routes carry the host.
    expect(c.features.api_example_com_api).toMatchObject({ routes: [{ path: "/api/**", host: "api.example.com" }], target: "legacy", shadow: { enabled: true, percent: 100, direction: "to_new" } });
    expect(c.features.admin_example_com_all).toMatchObject({ routes: [{ path: "/**", host: "admin.example.com" }], target: "new" });
    expect(c.shadow).toMatchObject({ enabled: false, methods: ["GET", "HEAD"] });
    expect(skippedNames(r)).toEqual(["24:server"]);
    expect(r.skipped[0]!.why).toMatch(/proxies nothing/);
  });

  it("proxy_ssl_* of https backends: verification with its CA, the name, a client certificate; unverified nginx stays unverified, and says so", () => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-import-upstream-tls-"));
    for (const f of ["ca.pem", "edge.pem", "edge.key"]) writeFileSync(join(dir, f), "-");
    const verified = imp(`http {
  upstream legacy { server 10.0.0.1:443; }
  upstream new { server 10.0.0.2:443; }
  proxy_ssl_verify on;
  proxy_ssl_trusted_certificate ${dir}/ca.pem;
  proxy_ssl_name api.internal;
  proxy_ssl_server_name on;
  proxy_ssl_certificate ${dir}/edge.pem;
  proxy_ssl_certificate_key ${dir}/edge.key;
  proxy_ssl_protocols TLSv1.2 TLSv1.3;
  server { listen 80; location /v2/ { proxy_pass https://new; } location / { proxy_pass https://legacy; } }
}`);
    const tls = { ca: `${dir}/ca.pem`, verify: true, server_name: "api.internal", cert: `${dir}/edge.pem`, key: `${dir}/edge.key` };
    expect(verified.loaded.backends.legacy).toMatchObject({ url: "https://10.0.0.1:443", tls });
    expect(verified.loaded.backends.new).toMatchObject({ url: "https://10.0.0.2:443", tls });
    expect(verified.decisions.join("\n")).toContain(`certificates checked (proxy_ssl_verify on) against ${dir}/ca.pem`);
    expect(verified.skipped.map((x) => x.directive)).toEqual(["proxy_ssl_protocols TLSv1.2 TLSv1.3"]);

    // nginx's defaults: nothing checked, no SNI; a CA file it never used is listed.
    const unverified = imp(`http {
  upstream legacy { server 10.0.0.1:443; }
  upstream new { server 10.0.0.2:8080; }
  proxy_ssl_trusted_certificate ca.pem;
  server { listen 80; location /v2/ { proxy_pass http://new; } location / { proxy_pass https://legacy; } }
}`.replace("ca.pem", `${dir}/ca.pem`));
    expect(unverified.loaded.backends.legacy.tls).toEqual({ verify: false });
    expect(unverified.loaded.backends.new.tls).toBeUndefined();
    expect(unverified.decisions.join("\n")).toMatch(/tls\.verify false: nginx did not check .*proxy_ssl_verify off, its default/);
    expect(unverified.decisions.join("\n")).toContain("nginx sends none without proxy_ssl_server_name on");
    expect(unverified.skipped.find((x) => x.directive.startsWith("proxy_ssl_trusted_certificate"))?.why).toMatch(/proxy_ssl_verify is off, so nginx never used it/);
  });

  it("a split by request id or an unreadable key is a per-request split; a three-way split or regex map key is listed", () => {
    const r = imp(`upstream old { server 127.0.0.1:1; }
upstream next { server 127.0.0.1:2; }
split_clients "$request_id" $p { 25% next; * old; }
split_clients "$uri$args" $q { 5% next; * old; }
server { listen 80; location /a/ { proxy_pass http://$p; } location /b/ { proxy_pass http://$q; } location / { proxy_pass http://old; } }`);
    expect(r.loaded.features.a).toMatchObject({ target: { percent: 25 }, unidentified: { legacy: 75, new: 25 } });
    expect(r.loaded.features.b).toMatchObject({ target: { percent: 5 }, unidentified: { legacy: 95, new: 5 } });
    expect(r.loaded.routing.identity.sources).toEqual([]);
    expect(skippedNames(r)).toEqual(["4:split_clients"]);
  });

  it("listen: ports, addresses, wildcards taking specific addresses, IPv6 beside IPv4, unix sockets listed", () => {
    const r = imp(`upstream legacy { server 127.0.0.1:1; }
upstream new { server 127.0.0.1:2; }
server {
  listen 8080;
  listen 127.0.0.1:8080;
  listen 10.0.0.1:81;
  listen 10.0.0.2:81 default_server;
  listen [::1]:82;
  listen *:83;
  listen localhost:84;
  listen unix:/run/app.sock;
  listen 85 proxy_protocol;
  location / { proxy_pass http://legacy; }
}`, { new: "http://127.0.0.1:2" });
    expect(r.loaded.listeners.map((l) => `${l.host} ${l.port}`)).toEqual(["0.0.0.0 8080", "10.0.0.1 81", "10.0.0.2 81", "::1 82", "0.0.0.0 83", "localhost 84", "0.0.0.0 85"]);
    expect(skippedNames(r)).toEqual(["2:upstream", "11:listen", "12:listen"]);
    expect(r.skipped.map((s) => s.why)).toEqual(["upstream new: no location proxies to it", "a unix socket listener: Switchyard listens on TCP", "listen flag proxy_protocol is not carried over"]);
  });

  it("set_real_ip_from becomes trusted_proxies; limit_conn per client address becomes max_requests_per_client", () => {
    const r = imp(`http {
  limit_conn_zone $binary_remote_addr zone=addr:10m;
  limit_conn_zone $server_name zone=perserver:10m;
  set_real_ip_from 10.0.0.0/8;
  set_real_ip_from 192.168.1.7;
  set_real_ip_from 2001:db8::/32;
  real_ip_header X-Forwarded-For;
  real_ip_recursive on;
  upstream legacy { server 127.0.0.1:1; }
  upstream new { server 127.0.0.1:2; }
  server {
    listen 80;
    limit_conn addr 10;
    location /api/ { proxy_pass http://new; }
    location / { proxy_pass http://legacy; }
  }
  server {
    listen 81;
    limit_conn perserver 100;
    location / { proxy_pass http://legacy; }
  }
}`);
    expect(r.loaded.proxy.trusted_proxies).toEqual(["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]);
    expect(r.decisions.join("\n")).toMatch(/trusted_proxies from set_real_ip_from: X-Forwarded-For .* is believed$/m);
    expect(r.loaded.limits.max_requests_per_client).toBe(10);
    // The limit on the other zone is neither the client's nor carried: listed, with its zone.
    expect(skippedNames(r)).toEqual(["3:limit_conn_zone", "19:limit_conn"]);
    expect(r.skipped.find((s) => s.line === 19)!.why).toMatch(/differs between locations/);
  });

  it("nothing is dropped silently: every directive of a busy file is used or listed", () => {
    const r = imp(`user nginx; pid /run/nginx.pid; error_log /var/log/nginx/error.log warn;
events { worker_connections 1024; }
http {
  include mime.types_inline_is_not_here;
  gzip on; sendfile on; server_tokens off;
  limit_req_zone $binary_remote_addr zone=one:10m rate=1r/s;
  upstream legacy { server 127.0.0.1:5042; }
  upstream new { server 127.0.0.1:5043; }
  server {
    listen 80;
    location /api/ { limit_req zone=one; proxy_pass http://new; proxy_buffering off; }
    location / { proxy_pass http://legacy; if ($request_method = POST) { return 405; } }
  }
}`.replace("  include mime.types_inline_is_not_here;\n", ""));
    expect(skippedNames(r)).toEqual(["1:user", "1:pid", "1:error_log", "2:events", "4:gzip", "4:sendfile", "4:server_tokens", "5:limit_req_zone", "10:limit_req", "10:proxy_buffering", "11:if"]);
    // TLS settings without a TLS listener say so.
    const tls = imp(`http { ssl_protocols TLSv1.2; upstream a { server 127.0.0.1:1; } upstream b { server 127.0.0.1:2; }
server { listen 80; location /x/ { proxy_pass http://b; } location / { proxy_pass http://a; } } }`);
    expect(tls.skipped.map((s) => `${s.line}:${s.why}`)).toEqual(["1:TLS settings apply to server blocks that listen with ssl: none that proxies uses this one"]);
    for (const s of r.skipped) expect(s.why.length).toBeGreaterThan(10);
  });
});
