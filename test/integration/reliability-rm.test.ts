/**
 * rm (issue 10, point 8): `rm -f` returned while 20-39 nsbox processes still
 * finished cleanup for 2-3 s, and `rm -f $(nsbox ps -aq)` removed a pod's infra
 * container so that a later `pod rm -f` said "no such pod". rm now returns only
 * when what it removed is gone, processes included; a pod's infra container is
 * removed only with its pod (docker and podman refuse it too).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cgroupDirsOf, inspectOne, leftoversOf, ok, removeAll, runDetached } from "../helpers/lifecycle.ts";
import { isOneNsboxLine, tryKill, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("rel-rm");
ctx.beforeCleanup(() => removeAll(ctx));

/** Host processes whose command line mentions one of the ids (monitors, their cleanup). */
function processesOf(ids: string[]): string[] {
  const out: string[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let cmd = "";
    try {
      cmd = readFileSync(`/proc/${e}/cmdline`, "utf8").replace(/\0/g, " ");
    } catch {
      continue;
    }
    if (ids.some((id) => cmd.includes(id))) out.push(`${e}: ${cmd}`);
  }
  return out;
}

describe("rm returns when what it removed is gone", () => {
  test("rm -f of running containers: no monitor or cleanup of them left when it returns", async () => {
    for (let round = 0; round < 3; round++) {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await runDetached(ctx, ["sleep", "1000"]));
      await ok(ctx, ["rm", "-f", ...ids]);
      expect({ round, processes: processesOf(ids), cgroups: ids.flatMap(cgroupDirsOf), left: ids.flatMap((id) => leftoversOf(ctx, id)) }).toEqual({
        round,
        processes: [],
        cgroups: [],
        left: [],
      });
    }
  });

  // The monitor is the parent of the container's PID 1. Killed before it has
  // reaped it, it hands the zombie to the host's init, and here that reaps only
  // every 1.8 s: the pid outlived rm (a pod's infra, once in CI under load).
  test("a monitor slow to finish (stopped here, as under heavy load) does not outlive rm -f, nor does PID 1 as a zombie", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await runDetached(ctx, ["sleep", "1000"]));
    const monitors: number[] = [];
    const inits: number[] = [];
    for (const id of ids) {
      const s = (await inspectOne(ctx, id)).State;
      monitors.push(s.MonitorPid);
      inits.push(s.Pid);
    }
    for (const m of monitors) process.kill(m, "SIGSTOP");
    try {
      await ok(ctx, ["rm", "-f", ...ids]);
      expect({
        processes: processesOf(ids),
        left: ids.flatMap((id) => leftoversOf(ctx, id)),
        inits: inits.filter((p) => existsSync(`/proc/${p}`)),
      }).toEqual({ processes: [], left: [], inits: [] });
    } finally {
      // never leave a stopped monitor behind, whatever happened
      for (const m of monitors) if (processesOf(ids).some((p) => p.startsWith(`${m}:`))) tryKill(m);
    }
  });

  test("rm of containers that have just exited by themselves", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push(await runDetached(ctx, ["true"]));
    await ok(ctx, ["rm", "-f", ...ids]);
    expect({ processes: processesOf(ids), left: ids.flatMap((id) => leftoversOf(ctx, id)) }).toEqual({ processes: [], left: [] });
  });
});

describe("a pod's infra container goes only with its pod", () => {
  test("rm -f of an infra container is refused, even with no member running", async () => {
    const pod = (await ok(ctx, ["pod", "create", "--net", "none", "--name", "lone"])).stdout.trim();
    const r = await ctx.nsbox(["rm", "-f", "lone-infra"]);
    expect({ code: r.code, oneLine: isOneNsboxLine(r.stderr) }).toEqual({ code: 125, oneLine: true });
    expect(r.stderr).toContain("is the infra container of pod lone: remove the pod instead (nsbox pod rm -f lone)");
    expect((await ok(ctx, ["pod", "ls", "--format", "json"])).stdout).toContain('"Name":"lone"');
    await ok(ctx, ["pod", "rm", "-f", "lone"]);
    expect(leftoversOf(ctx, pod)).toEqual([]);
  });

  test("rm -f $(nsbox ps -aq) removes every container but the infra; pod rm -f then removes the pod", async () => {
    const pod = (await ok(ctx, ["pod", "create", "--net", "none", "--name", "sweep"])).stdout.trim();
    // (--pod takes no --net: the member shares the pod's)
    const member = (await ok(ctx, ["run", "-d", "--pod", "sweep", ctx.rootfs, "sleep", "1000"])).stdout.trim();
    const plain = await runDetached(ctx, ["sleep", "1000"]);
    const all = (await ok(ctx, ["ps", "-aq", "--no-trunc"])).stdout.trim().split("\n");
    expect(all.sort()).toEqual([pod, member, plain].sort());
    const r = await ctx.nsbox(["rm", "-f", ...all]);
    expect(r.code).toBe(125);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringContaining("is the infra container of pod sweep")]);
    expect((await ok(ctx, ["ps", "-aq", "--no-trunc"])).stdout.trim()).toBe(pod);
    await ok(ctx, ["pod", "rm", "-f", "sweep"]);
    expect((await ok(ctx, ["ps", "-aq"])).stdout).toBe("");
    expect([pod, member, plain].flatMap((id) => leftoversOf(ctx, id))).toEqual([]);
    expect(processesOf([pod, member, plain])).toEqual([]);
  });
});
