// Where the running code is: the TypeScript sources (Node's type stripping: tests, development) or
// the JavaScript built into dist/ (`npm run build`: npm start, the image; no type stripping in the
// process, ~30 MiB less resident memory). Modules that start another module of their own (cluster
// workers, worker threads, forked report runs) name it through moduleBeside, so both layouts work.

/** The URL of the module `name` (no extension) beside `here` (import.meta.url), in the same language. */
export function moduleBeside(here: string, name: string): URL {
  const ext = /\.(ts|js|mjs)$/.exec(new URL(here).pathname)?.[0] ?? ".js";
  return new URL(`./${name}${ext}`, here);
}
