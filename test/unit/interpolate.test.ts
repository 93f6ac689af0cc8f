import { describe, expect, it } from "vitest";
import { hasMalformedReference, interpolate } from "../../src/config/interpolate.ts";

const env = { ASYNC_MODE: "pilot", PCT: "25", EMPTY: "" };

describe("interpolate", () => {
  it("substitutes set variables", () => {
    expect(interpolate("${ASYNC_MODE}", env)).toEqual({ value: "pilot", missing: [], substituted: true });
    expect(interpolate("mode-${ASYNC_MODE}-${PCT}%", env).value).toBe("mode-pilot-25%");
  });
  it("uses the default when unset or empty, like the shell", () => {
    expect(interpolate("${NOPE:-10}", env).value).toBe("10");
    expect(interpolate("${EMPTY:-fallback}", env).value).toBe("fallback");
    expect(interpolate("${NOPE:-}", env).value).toBe("");
    expect(interpolate("${PCT:-99}", env).value).toBe("25");
  });
  it("keeps an empty value when no default is given", () => {
    expect(interpolate("${EMPTY}", env)).toEqual({ value: "", missing: [], substituted: true });
  });
  it("reports every missing variable", () => {
    expect(interpolate("${A}/${B}/${PCT}", env).missing).toEqual(["A", "B"]);
  });
  it("leaves text without references alone", () => {
    expect(interpolate("plain $HOME {x}", env)).toEqual({ value: "plain $HOME {x}", missing: [], substituted: false });
  });
  it("treats $${ as a literal ${", () => {
    expect(interpolate("$${NOT_A_VAR}", env)).toEqual({ value: "${NOT_A_VAR}", missing: [], substituted: false });
  });
  it("defaults may contain colons and slashes", () => {
    expect(interpolate("${URL:-http://127.0.0.1:5042}", env).value).toBe("http://127.0.0.1:5042");
  });
});

describe("hasMalformedReference", () => {
  it.each(["${PORT", "${1X}", "${}", "${A-b}", "x ${ y"])("flags %j", (t) => expect(hasMalformedReference(t)).toBe(true));
  it.each(["${PORT}", "${PORT:-1}", "$${PORT", "no refs", "${A_1:-x y}"])("accepts %j", (t) => expect(hasMalformedReference(t)).toBe(false));
});
