/**
 * The starts that bench/ measures call none of JavaScriptCore's builtins that
 * are written in JavaScript (Array.prototype.map, filter, some, ..., padStart,
 * Promise.race): each one's first call in a process compiles it from source,
 * where nsbox's own code comes compiled (src/list.ts has the numbers and the
 * loops that replace them). Nor do they make an Error (the first costs Bun
 * ~0.7-1.2 MiB of peak RSS: src/native/fs.ts's readTextIfThere). nsbox runs from its sources here, with
 * test/helpers/builtin-tracer.ts preloaded to record every such call made from
 * src/; a failure names the file and line to change.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("builtins");
const TRACER = join(REPO, "test/helpers/builtin-tracer.ts");

/** Runs nsbox from its sources with the tracer; returns the builtins' call sites in src/. */
async function callsOf(args: string[]): Promise<Record<string, string[]>> {
  const out = join(ctx.tmp, `trace-${args[0]}-${Date.now()}.json`);
  const r = await ctx.nsbox(args, { prefix: ["bun", "--preload", TRACER], bin: join(REPO, "src/main.ts"), env: { NSBOX_BUILTIN_TRACE: out } });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(readFileSync(out, "utf8"));
}

describe("a start calls no builtin written in JavaScript", () => {
  afterAll(async () => {
    await ctx.nsbox(["rm", "-f", "builtins-exec"]);
  });

  test("the tracer sees such a call (a command off the measured path makes some)", async () => {
    // the check would pass vacuously if the preload did nothing: `images` sorts its table
    const calls = await callsOf(["images"]);
    expect(Object.keys(calls).length).toBeGreaterThan(0);
  });

  test("run --net none ROOTFS /bin/true, with and without limits", async () => {
    // a first run compiles the seccomp profile into the data root's cache, once per host:
    // the starts measured (and these) read the cached filter
    expect((await ctx.run(["--net", "none", ctx.rootfs, "/bin/true"])).code).toBe(0);
    expect(await callsOf(["run", "--net", "none", ctx.rootfs, "/bin/true"])).toEqual({});
    expect(await callsOf(["run", "--net", "none", "--memory", "64m", "--pids-limit", "64", ctx.rootfs, "/bin/true"])).toEqual({});
  });

  test("exec CONTAINER /bin/true, by name and by id (what the bench measures)", async () => {
    const d = await ctx.run(["-d", "--name", "builtins-exec", "--net", "none", ctx.rootfs, "sleep", "600"]);
    expect(d.code).toBe(0);
    expect(await callsOf(["exec", "builtins-exec", "/bin/true"])).toEqual({});
    expect(await callsOf(["exec", d.stdout.trim(), "/bin/true"])).toEqual({});
  });
});
