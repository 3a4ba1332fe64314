/**
 * The run path's string tests written out by hand (src/text.ts, parseSize,
 * parseUserFlag, the cgroup layout): each is checked against the regular
 * expression it replaced, on the same inputs, so that no input is read
 * differently.
 */
import { describe, expect, test } from "bun:test";
import { parseUserFlag } from "../../src/config/parse.ts";
import { parseSize } from "../../src/config/units.ts";
import { isDigits, isHex, keyedNumber, nameserverOf, withoutDashes } from "../../src/text.ts";

const odd = ["", " ", "0", "007", "12a", "a12", "-1", "+1", "1.5", "١٢", "1\n", "\n1", "１２", "99999999999999999999"];

describe("src/text.ts against the regular expressions it replaced", () => {
  test("isDigits is /^\\d+$/", () => {
    for (const t of odd) expect(isDigits(t)).toBe(/^\d+$/.test(t));
  });
  test("isHex is /^[0-9a-f]+$/ and /^[0-9a-f]{N}$/", () => {
    const ids = [...odd, "abc", "ABC", "0b8e9cea", "g1", "a".repeat(64), "a".repeat(63), "A".repeat(64), `${"f".repeat(63)}\n`];
    for (const t of ids) {
      expect(isHex(t)).toBe(/^[0-9a-f]+$/.test(t));
      expect(isHex(t, 64)).toBe(/^[0-9a-f]{64}$/.test(t));
    }
  });
  test("withoutDashes is replace(/^--?/, '')", () => {
    for (const t of ["--root", "-root", "---x", "root", "-", "--", "", "--a=b", "x-y"]) expect(withoutDashes(t)).toBe(t.replace(/^--?/, ""));
  });
  test("keyedNumber is /^KEY (\\d+)$/m", () => {
    const texts = ["oom 1\noom_kill 3\n", "oom_kill 0", "oom_kill  3\n", "oom_kill 3x\noom_kill 4\n", "xoom_kill 5\n", "", "oom_kill\n", "oom_kill 12\r\n"];
    for (const t of texts) {
      const m = /^oom_kill (\d+)$/m.exec(t);
      expect(keyedNumber(t, "oom_kill")).toBe(m ? Number(m[1]) : undefined);
    }
  });
  test("nameserverOf is /^\\s*nameserver\\s+/", () => {
    const lines = [
      "nameserver 1.1.1.1",
      "  nameserver\t10.0.0.1",
      "nameserver",
      "nameserver1.1.1.1",
      "#nameserver 1.1.1.1",
      "search x",
      "",
      " nameserver  ::1 ",
    ];
    for (const l of lines) expect(nameserverOf(l) !== undefined).toBe(/^\s*nameserver\s+/.test(l));
    expect(nameserverOf("  nameserver\t10.0.0.1")).toBe("10.0.0.1");
  });
});

describe("parseSize and parseUserFlag against their former regular expressions", () => {
  const SIZE = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i;
  const MULT: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  const sizes = [
    "64m",
    "64M",
    "1g",
    "1.5g",
    "1.5 GiB",
    "512k",
    "512kb",
    "512KiB",
    "100",
    "100b",
    "100ib",
    "0",
    "1.",
    ".5m",
    "1..5m",
    "m",
    "",
    "64 m",
    "64mm",
    "64x",
    "-1",
    "1e3",
    "2p",
    "3t",
  ];
  test("the same sizes accepted, with the same value", () => {
    for (const s of sizes) {
      const m = SIZE.exec(s.trim());
      if (!m) expect(() => parseSize(s, "--memory")).toThrow();
      else expect(parseSize(s, "--memory")).toBe(Math.floor(Number(m[1]) * (MULT[(m[2] as string).toLowerCase()] as number)));
    }
  });
  test("the same --user texts accepted, split the same way", () => {
    for (const t of ["1000", "1000:1000", "root:wheel", "a:", ":b", "a:b:c", "", ":", "a b:c"]) {
      const m = /^([^:]+)(?::([^:]+))?$/.exec(t);
      if (!m) expect(() => parseUserFlag(t)).toThrow();
      else expect(parseUserFlag(t)).toEqual({ user: m[1] as string, group: m[2] });
    }
  });
});
