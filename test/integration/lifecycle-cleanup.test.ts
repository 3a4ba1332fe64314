/**
 * The cleanup of a foreground run that Bun waits for itself (the short runs: see
 * HANDOFF_AFTER_MS in src/container/foreground.ts) writes the exit file only for
 * a `nsbox wait` that holds the lock, and removes the state dir config.json
 * first: what each of those keeps guaranteed, against the real kernel.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { leftoversOf, lockHolders, psJson, removeAll, runDetached } from "../helpers/lifecycle.ts";
import { ls, useNsbox, waitUntil } from "../helpers/nsbox.ts";

const ctx = useNsbox("lifecycle-cleanup");
ctx.beforeCleanup(() => removeAll(ctx));
const BUN_WAITS = { env: { NSBOX_FG_HANDOFF_MS: "never" } };

describe("a foreground run that Bun waits for", () => {
  test("`nsbox wait` gets its code (the exit file is written for it), and nothing is left once the run returns", async () => {
    // PID 1 exits once it reads a line: only after `nsbox wait` holds the lock
    const r = ctx.start(["run", "-i", "--name", "bunwait", "--net", "none", ctx.rootfs, "sh", "-c", "echo ready; read x; exit 9"], BUN_WAITS);
    await r.waitFor("ready");
    const id = readlinkSync(join(ctx.stateRoot, "names", "bunwait"));
    const waited = ctx.nsbox(["wait", "bunwait"]);
    expect(await waitUntil(() => lockHolders(ctx.stateRoot, id).length > 0, 10000)).toBe(true);
    r.proc.stdin.write("go\n");
    r.proc.stdin.end();
    expect((await r.result()).code).toBe(9);
    expect((await waited).stdout).toBe("9\n");
    expect(leftoversOf(ctx, id)).toEqual([]);
    // the name is free at once
    expect((await ctx.run(["--name", "bunwait", "--net", "none", ctx.rootfs, "true"], BUN_WAITS)).code).toBe(0);
  });

  test("without a waiter: the code, and nothing left (no exit file was needed)", async () => {
    const before = ls(ctx.stateRoot).filter((e) => /^[0-9a-f]{64}$/.test(e));
    const r = await ctx.run(["--net", "none", ctx.rootfs, "sh", "-c", "exit 3"], BUN_WAITS);
    expect(r.code).toBe(3);
    expect(ls(ctx.stateRoot).filter((e) => /^[0-9a-f]{64}$/.test(e))).toEqual(before);
  });
});

describe("a removal cut short after config.json", () => {
  test("the container is gone for every command at once, and the next one that repairs removes the rest", async () => {
    const id = await runDetached(ctx, ["true"]);
    // its monitor records the exit and gives the cgroup back (released)
    const released = () => JSON.parse(readFileSync(join(ctx.stateRoot, id, "state.json"), "utf8")).released === true;
    expect(await waitUntil(released, 10000)).toBe(true);
    unlinkSync(join(ctx.stateRoot, id, "config.json")); // what an rm killed right after its first step leaves
    expect(existsSync(join(ctx.stateRoot, id))).toBe(true);
    // ps repairs first (reconcile), then lists: the state dir and the kept layers go
    expect((await psJson(ctx)).map((e) => e.ID)).not.toContain(id);
    expect(leftoversOf(ctx, id)).toEqual([]);
  });
});
