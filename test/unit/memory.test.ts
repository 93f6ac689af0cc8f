// The idle trimmer's rule, on its own clock: once per start or reload, only after afterMs with the
// activity counter still and nothing in flight.
import { describe, expect, it } from "vitest";
import { allocatorIn, IdleTrimmer } from "../../src/observe/memory.ts";
import { createLogger } from "../../src/observe/logger.ts";
import { Writable } from "node:stream";

const quietLogger = () => createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, cb) => cb() }) });

describe("IdleTrimmer", () => {
  it("waits for afterMs of quiet, never trims with something in flight, and trims once per start or reload", () => {
    const activity = { started: 0, inflight: 0 };
    const t = new IdleTrimmer(() => activity, quietLogger(), 1000);
    t.stop(); // driven by hand below
    t.check(0);
    t.check(999);
    expect(t.trims).toBe(0);
    // A long request (or an open tunnel): never, however long it lasts.
    activity.started = 1;
    activity.inflight = 1;
    t.check(1000);
    t.check(5000);
    expect(t.trims).toBe(0);
    // It ends: the quiet period counts from the last look that saw it in flight.
    activity.inflight = 0;
    t.check(5100);
    t.check(5999);
    expect(t.trims).toBe(0);
    t.check(6000);
    expect(t.trims).toBe(1);
    // Traffic after that is no reason to trim again.
    activity.started = 50;
    t.check(7000);
    t.check(20_000);
    expect(t.trims).toBe(1);
    // A reload is, once afterMs have passed since it with nothing in flight.
    t.reloaded(1000);
    t.stop();
    t.check(20_500);
    t.check(21_499);
    expect(t.trims).toBe(1);
    t.check(21_500);
    expect(t.trims).toBe(2);
    // And after a reload during traffic, once the traffic is over for afterMs.
    t.reloaded(1000);
    t.stop();
    activity.started = 60;
    activity.inflight = 3;
    t.check(30_000);
    activity.inflight = 0;
    t.check(30_999);
    expect(t.trims).toBe(2);
    t.check(31_000);
    expect(t.trims).toBe(3);
    t.check(40_000);
    expect(t.trims).toBe(3);
  });

  it("does nothing when turned off", () => {
    const activity = { started: 0, inflight: 0 };
    const t = new IdleTrimmer(() => activity, quietLogger(), 0);
    t.reloaded(0);
    // No timer runs; nothing trims by itself over a second.
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        expect(t.trims).toBe(0);
        resolve();
      }, 300),
    );
  });
});

describe("allocatorIn", () => {
  it("names the allocator library a memory map shows, the system's when none", () => {
    const line = (path: string) => `7f0c1a200000-7f0c1a22a000 r--p 00000000 08:01 1234  ${path}\n`;
    const base = line("/usr/lib/x86_64-linux-gnu/libc.so.6") + line("/work/node_modules/node/bin/node");
    expect(allocatorIn(base)).toBe("system");
    expect(allocatorIn(base + line("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"))).toBe("jemalloc");
    expect(allocatorIn(base + line("/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0"))).toBe("mimalloc");
    expect(allocatorIn(base + line("/usr/lib64/libtcmalloc_minimal.so.4"))).toBe("tcmalloc");
    expect(allocatorIn(line("/home/u/jemalloc-notes/libc.so.6"))).toBe("system"); // a directory's name is not a library
  });
});
