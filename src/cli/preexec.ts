// Imported first by main.ts: `switchyard start` and `demo` re-execute under jemalloc (allocator.ts)
// here, before the rest of the program is evaluated - that first evaluation is what the
// re-execution throws away (~0.3 s of start-up when it came after). Bad arguments or a bad
// SWITCHYARD_ALLOCATOR are left for main() to report, with its exit codes.
import { parseArgs } from "node:util";
import { useJemalloc } from "./allocator.ts";
import { CLI_OPTIONS } from "./options.ts";

try {
  const { values, positionals } = parseArgs({ args: process.argv.slice(2), allowPositionals: true, allowNegative: true, options: CLI_OPTIONS });
  if (!values.help && !values.version && (positionals[0] === "start" || positionals[0] === "demo")) useJemalloc();
} catch {
  // main() reports it
}
