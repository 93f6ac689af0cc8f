// npm run build: the sources compiled to dist/ (what npm start, `npx switchyard` and the image run),
// with the files they read beside them (the admin page) and the CLI executable. Runs on `npm ci`
// (prepare) and before `npm start`; tests run the TypeScript sources directly.
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dist = join(root, "dist");
rmSync(dist, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (tsc.status !== 0) {
  process.stderr.write("build: tsc failed (see above); dist/ is incomplete\n");
  process.exit(tsc.status ?? 1);
}
// Every file under src/ that is not TypeScript is read at run time: copy it to the same place.
for (const entry of readdirSync(join(root, "src"), { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || entry.name.endsWith(".ts")) continue;
  const from = join(entry.parentPath, entry.name);
  cpSync(from, join(dist, from.slice(join(root, "src").length)));
}
chmodSync(join(dist, "cli/main.js"), 0o755);
