// Which allocator `switchyard start` and `demo` run on: SWITCHYARD_ALLOCATOR against what is
// installed, what LD_PRELOAD already holds, the platform and whether Node can re-execute itself.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AllocatorError, JEMALLOC_CANDIDATES, JEMALLOC_CONF, planAllocator } from "../../src/cli/allocator.ts";

const DEBIAN = JEMALLOC_CANDIDATES[0]!;
const installed = (...paths: string[]) => (p: string) => paths.includes(p);
const plan = (env: NodeJS.ProcessEnv, exists = installed(DEBIAN), platform = "linux", canExec = true) => planAllocator(env, platform, exists, canExec);

describe("planAllocator", () => {
  it("auto (unset, empty or spelled out): re-executes with the installed jemalloc and the purging settings", () => {
    for (const value of [undefined, "", "  ", "auto"]) {
      expect(plan({ SWITCHYARD_ALLOCATOR: value })).toEqual({ kind: "exec", library: DEBIAN, env: { LD_PRELOAD: DEBIAN, MALLOC_CONF: JEMALLOC_CONF } });
    }
  });

  it("finds the library where each distribution puts it, in the listed order", () => {
    for (const path of JEMALLOC_CANDIDATES) expect(plan({}, installed(path))).toMatchObject({ kind: "exec", library: path });
    expect(plan({}, installed(...JEMALLOC_CANDIDATES.slice(2), JEMALLOC_CANDIDATES[1]!))).toMatchObject({ library: JEMALLOC_CANDIDATES[1] });
  });

  it("keeps a MALLOC_CONF of yours", () => {
    expect(plan({ MALLOC_CONF: "narenas:2" })).toMatchObject({ kind: "exec", env: { MALLOC_CONF: "narenas:2" } });
  });

  it("auto without jemalloc installed: runs on, and says how to install it", () => {
    const p = plan({}, installed());
    expect(p.kind).toBe("stay");
    expect(p.kind === "stay" && p.note).toMatch(/not installed .*apt-get install libjemalloc2/);
  });

  it("system: never re-executes, whatever is installed", () => {
    expect(plan({ SWITCHYARD_ALLOCATOR: "system" })).toEqual({ kind: "stay", note: "SWITCHYARD_ALLOCATOR=system" });
  });

  it("jemalloc (required) without it installed is an error that names the variable and the way out", () => {
    expect(() => plan({ SWITCHYARD_ALLOCATOR: "jemalloc" }, installed())).toThrow(AllocatorError);
    expect(() => plan({ SWITCHYARD_ALLOCATOR: "jemalloc" }, installed())).toThrow(/SWITCHYARD_ALLOCATOR=jemalloc: jemalloc is not installed.*SWITCHYARD_ALLOCATOR=system/);
  });

  it("a library path: used when it exists, an error when it does not", () => {
    const custom = "/opt/jemalloc/lib/libjemalloc.so.2";
    expect(plan({ SWITCHYARD_ALLOCATOR: custom }, installed(custom, DEBIAN))).toMatchObject({ kind: "exec", library: custom, env: { LD_PRELOAD: custom } });
    expect(() => plan({ SWITCHYARD_ALLOCATOR: custom })).toThrow(`SWITCHYARD_ALLOCATOR=${custom}: ${custom} does not exist`);
  });

  it("anything else is refused with the accepted values", () => {
    for (const value of ["tcmalloc", "jemalloc.so", "lib/libjemalloc.so.2", "JEMALLOC", "off"]) {
      expect(() => plan({ SWITCHYARD_ALLOCATOR: value })).toThrow(`SWITCHYARD_ALLOCATOR must be auto, jemalloc, system or the absolute path of libjemalloc.so.2, got "${value}"`);
    }
  });

  it("jemalloc already preloaded (by the re-execution or by you): runs on, which is what ends the loop", () => {
    expect(plan({ LD_PRELOAD: DEBIAN })).toEqual({ kind: "stay", note: "LD_PRELOAD has jemalloc" });
    expect(plan({ LD_PRELOAD: "/somewhere/else/libjemalloc.so.2" })).toMatchObject({ kind: "stay" });
    expect(plan({ LD_PRELOAD: `/usr/lib/libfoo.so ${DEBIAN}`, SWITCHYARD_ALLOCATOR: "jemalloc" })).toMatchObject({ kind: "stay" });
  });

  it("something else preloaded: left alone under auto, jemalloc put first when asked for", () => {
    const other = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2";
    const p = plan({ LD_PRELOAD: other });
    expect(p).toMatchObject({ kind: "stay" });
    expect(p.kind === "stay" && p.note).toContain(other);
    expect(plan({ LD_PRELOAD: other, SWITCHYARD_ALLOCATOR: "jemalloc" })).toMatchObject({ kind: "exec", env: { LD_PRELOAD: `${DEBIAN}:${other}` } });
  });

  it("not Linux, or no process.execve: runs on under auto, an error when jemalloc was required", () => {
    expect(plan({}, installed(DEBIAN), "darwin")).toMatchObject({ kind: "stay", note: expect.stringMatching(/Linux only \(this is darwin\)/) });
    expect(() => plan({ SWITCHYARD_ALLOCATOR: "jemalloc" }, installed(DEBIAN), "darwin")).toThrow(AllocatorError);
    expect(plan({}, installed(DEBIAN), "linux", false)).toMatchObject({ kind: "stay", note: expect.stringMatching(/execve/) });
    expect(() => plan({ SWITCHYARD_ALLOCATOR: "jemalloc" }, installed(DEBIAN), "linux", false)).toThrow(/execve/);
  });

  it("property: a re-execution's environment never asks for another one (no exec loop), and keeps what was preloaded", () => {
    const lib = fc.constantFrom(...JEMALLOC_CANDIDATES, "/opt/j/libjemalloc.so.2");
    const preload = fc.array(fc.constantFrom("/usr/lib/libfoo.so", "/lib/x86_64-linux-gnu/libmimalloc.so.2", "/tmp/trace.so"), { maxLength: 3 });
    const asked = fc.constantFrom(undefined, "", "auto", "jemalloc", "system", "/opt/j/libjemalloc.so.2");
    fc.assert(
      fc.property(lib, preload, asked, fc.option(fc.constantFrom("narenas:1", "background_thread:false")), (library, pre, value, conf) => {
        const env: NodeJS.ProcessEnv = { SWITCHYARD_ALLOCATOR: value, LD_PRELOAD: pre.join(":") || undefined, MALLOC_CONF: conf ?? undefined };
        const exists = installed(library);
        let first;
        try {
          first = plan(env, exists);
        } catch (err) {
          expect(err).toBeInstanceOf(AllocatorError);
          return;
        }
        if (first.kind === "stay") return;
        expect(first.env.LD_PRELOAD!.split(":")).toEqual([first.library, ...pre]);
        expect(first.env.MALLOC_CONF).toBe(conf ?? JEMALLOC_CONF);
        expect(plan({ ...env, ...first.env }, exists)).toEqual({ kind: "stay", note: "LD_PRELOAD has jemalloc" });
      }),
      { numRuns: 2000 },
    );
  });
});
