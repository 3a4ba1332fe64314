/**
 * bytecode-order/ (bench/record-bytecode-order.sh) names the functions that run,
 * limits and exec execute, so that `bun build --bytecode-order` lays their
 * bytecode out first in dist/nsbox's payload. An edit renames the functions it
 * changes: this fails once the recorded files no longer cover what dist/nsbox
 * runs now, which is when `make bytecode-order` must record them again.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("bytecode-order");
const REPO = join(import.meta.dir, "..", "..");
const FILES = ["run", "limits", "exec"].map((f) => join(REPO, "bytecode-order", `${f}.txt`));

/** The functions an order file names (its "F <hash>" lines). */
const functions = (text: string) => new Set(text.split("\n").filter((l) => l.startsWith("F ")));

/** Which of the functions a start of dist/nsbox executes are in the recorded files. */
async function coverage(args: string[], recorded: Set<string>): Promise<{ ran: number; missing: number }> {
  const out = join(ctx.tmp, `order-${args[0]}.txt`);
  rmSync(out, { force: true });
  const r = await ctx.nsbox(args, { env: { BUN_BYTECODE_ORDER_OUT: out } });
  expect(r.code).toBe(0);
  const ran = functions(readFileSync(out, "utf8"));
  let missing = 0;
  for (const f of ran) if (!recorded.has(f)) missing++;
  return { ran: ran.size, missing };
}

describe("the recorded bytecode order", () => {
  test("the Makefile builds dist/nsbox with the three files, most important first", () => {
    const dry = Bun.spawnSync(["make", "-n", "-B", "dist/nsbox"], { cwd: REPO, env: { ...process.env, MAKEFLAGS: "" } });
    const line =
      dry.stdout
        .toString()
        .split("\n")
        .find((l) => l.includes("build") && l.includes("src/main.ts")) ?? "";
    expect(line).toContain("--bytecode-order=bytecode-order/run.txt --bytecode-order=bytecode-order/limits.txt --bytecode-order=bytecode-order/exec.txt");
  });

  test("covers at least 90% of the functions run and exec execute now (else: make bytecode-order)", async () => {
    const recorded = new Set<string>();
    for (const f of FILES) for (const fn of functions(readFileSync(f, "utf8"))) recorded.add(fn);
    expect(recorded.size).toBeGreaterThan(100);
    await ctx.nsbox(["run", "--rm", "--net", "none", ctx.rootfs, "true"]); // the helper's copy: a usual start next
    const run = await coverage(["run", "--rm", "--net", "none", ctx.rootfs, "true"], recorded);
    const name = `order-${process.pid}`;
    const d = await ctx.nsbox(["run", "-d", "--name", name, "--net", "none", ctx.rootfs, "sleep", "60"]);
    expect(d.code).toBe(0);
    try {
      const exec = await coverage(["exec", name, "true"], recorded);
      for (const [what, c] of [
        ["run", run],
        ["exec", exec],
      ] as const) {
        expect(c.ran, what).toBeGreaterThan(100);
        expect(c.missing / c.ran, `${what}: ${c.missing} of ${c.ran} functions are not in bytecode-order/: run make bytecode-order`).toBeLessThan(0.1);
      }
    } finally {
      await ctx.nsbox(["rm", "-f", name]);
    }
  });
});
