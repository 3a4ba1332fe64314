import { describe, expect, test } from "bun:test";
import { type FlagsDef, parseFlags } from "../../src/cli/args.ts";
import { NsboxError } from "../../src/errors.ts";

const defs = {
  rootfs: { type: "positional", description: "" },
  command: { type: "positional", description: "" },
  interactive: { type: "boolean", alias: "i", description: "" },
  tty: { type: "boolean", alias: "t", description: "" },
  env: { type: "string", alias: "e", multiple: true, description: "" },
  hostname: { type: "string", description: "" },
  userns: { type: "string", description: "", bare: "auto" },
} satisfies FlagsDef;

describe("parseFlags", () => {
  test("stops at the command: its flags are its own", () => {
    const p = parseFlags("run", ["-it", "-e", "A=1", "--env=B=2", "root", "sh", "-c", "echo --hostname"], defs, 1);
    expect(p.flags.interactive).toBe(true);
    expect(p.flags.tty).toBe(true);
    expect(p.flags.env).toEqual(["A=1", "B=2"]);
    expect(p.positionals).toEqual(["root"]);
    expect(p.rest).toEqual(["sh", "-c", "echo --hostname"]);
  });
  test("attached short values and -- end flags", () => {
    const p = parseFlags("run", ["-eX=1", "--", "-root", "cmd"], defs, 1);
    expect(p.flags.env).toEqual(["X=1"]);
    expect(p.positionals).toEqual(["-root"]);
    expect(p.rest).toEqual(["cmd"]);
  });
  test("a bare optional-value flag takes its default, and --flag=V another value", () => {
    expect(parseFlags("run", ["--userns", "r", "c"], defs, 1).flags.userns).toBe("auto");
    expect(parseFlags("run", ["--userns=100000:65536", "r", "c"], defs, 1).flags.userns).toBe("100000:65536");
  });
  test("unknown flags and missing values are errors naming them", () => {
    expect(() => parseFlags("run", ["--bogus", "r", "c"], defs, 1)).toThrow(/unknown flag --bogus/);
    expect(() => parseFlags("run", ["-x", "r"], defs, 1)).toThrow(/unknown flag -x/);
    expect(() => parseFlags("run", ["--hostname"], defs, 1)).toThrow(/needs a value/);
    try {
      parseFlags("run", ["--bogus"], defs, 1);
    } catch (e) {
      expect(e).toBeInstanceOf(NsboxError);
      expect((e as NsboxError).exitCode).toBe(125);
    }
  });
  test("too many positionals without a command", () => {
    expect(() => parseFlags("ps", ["a", "b", "c"], { x: { type: "positional", description: "" } })).toThrow(/too many arguments/);
  });
});
