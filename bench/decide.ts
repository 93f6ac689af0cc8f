// npm run bench:decide: the cost of one routing decision (ns/op) on realistic tables, median of rounds.
import { parseConfigText } from "../src/config/load.ts";
import { compileRoutingTable, decide, type RequestFacts } from "../src/routing/decide.ts";
import { bucketOf, thresholdOf } from "../src/routing/hash.ts";

const BASE = "listeners:\n  - port: 8080\nbackends:\n  legacy:\n    url: http://127.0.0.1:5042\n  new:\n    url: http://127.0.0.1:5043\n";

function table(yaml: string) {
  const r = parseConfigText(BASE + yaml, "bench.yaml", {});
  if (!r.ok) throw new Error(r.errors.map((e) => e.format()).join("\n"));
  return compileRoutingTable(r.config.routing, r.config.features);
}

// 40 features like a real API surface, the one under test last in the file.
const many = Array.from({ length: 40 }, (_, i) => `  f${i}:\n    routes: ["GET /api/1/area${i}/**", "POST /api/1/area${i}/:id/action"]\n    target: new\n`).join("");
const cases: [string, ReturnType<typeof table>, Partial<RequestFacts>][] = [
  ["no features (default backend)", table(""), { target: "/api/1/ping" }],
  ["fixed target, 40 features", table(`features:\n${many}`), { target: "/api/1/area39/x/y" }],
  ["percent by header user, 40 features", table(`features:\n${many}  reports:\n    routes: ["/api/1/reports/**"]\n    target: { percent: 25 }\n`), { target: "/api/1/reports/daily", headers: { "x-user-id": "user-12345" } }],
  ["percent by sticky cookie", table(`features:\n  reports:\n    routes: ["/api/1/reports/**"]\n    target: { percent: 25 }\n`), { target: "/api/1/reports/daily", headers: { cookie: "theme=dark; sy_uid=4b6f2c1e-0f7e-4f0c-9b61-3c1d2a9e8f10" } }],
  ["percent by JWT claim", table(`routing:\n  identity:\n    sources: [{jwt: {claim: sub}}]\nfeatures:\n  reports:\n    routes: ["/api/1/reports/**"]\n    target: { percent: 25 }\n`), { target: "/api/1/reports/daily", headers: { authorization: `Bearer e30.${Buffer.from('{"sub":"user-42","iat":1700000000}').toString("base64url")}.sig` } }],
  ["dodgy path normalised", table(`features:\n${many}`), { target: "/api/1/./area39//x/%2e%2e/y?q=1" }],
];

const ROUNDS = 7;
const N = 200_000;
process.stdout.write(`decide() cost, node ${process.version}, median of ${ROUNDS} x ${N.toLocaleString("en-US")} calls\n`);
for (const [name, t, over] of cases) {
  const facts: RequestFacts = { method: "GET", target: "/", host: "shop.example", clientIp: "203.0.113.9", headers: {}, requestId: "r", mintId: () => "m", ...over };
  let sink = 0;
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += decide(facts, t).backend === "new" ? 1 : 0;
    times.push(Number(process.hrtime.bigint() - t0) / N);
  }
  times.sort((a, b) => a - b);
  process.stdout.write(`${name.padEnd(40)} ${times[ROUNDS >> 1]!.toFixed(0).padStart(6)} ns/op   (min ${times[0]!.toFixed(0)}, sink ${sink > 0 ? "ok" : "0"})\n`);
}

// Accuracy: the share of 100k synthetic ids on `new` at each target percent.
process.stdout.write("\nshare on new of 100,000 ids (target -> measured)\n");
const populations: [string, string[]][] = [
  ['"user-<i>", salt switchyard', Array.from({ length: 100_000 }, (_, i) => `user-${i}`)],
  ["random UUIDs, salt switchyard", Array.from({ length: 100_000 }, () => crypto.randomUUID())],
];
for (const [name, ids] of populations) {
  const row = [1, 10, 25, 50, 99].map((p) => {
    const t = thresholdOf(p);
    const share = (100 * ids.filter((id) => bucketOf("switchyard", id) < t).length) / ids.length;
    return `${p}% -> ${share.toFixed(2)}%`;
  });
  process.stdout.write(`${name.padEnd(32)} ${row.join("   ")}\n`);
}
