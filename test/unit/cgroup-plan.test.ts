/**
 * planCgroup's record is the one createCgroup returns (so that a container's
 * config.json is written once). Plain directories stand in for the cgroup
 * mounts: with no limits, creating a cgroup is mkdir and nothing else.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CgroupHost } from "../../src/cgroup/detect.ts";
import { createV1, planV1 } from "../../src/cgroup/v1.ts";
import { createV2, planV2 } from "../../src/cgroup/v2.ts";

let tmp: string;
const saved = process.env.NSBOX_HOST_STATE;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "nsbox-cgplan-"));
  process.env.NSBOX_HOST_STATE = join(tmp, "host-state"); // where nsbox records the parents it made
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  if (saved === undefined) delete process.env.NSBOX_HOST_STATE;
  else process.env.NSBOX_HOST_STATE = saved;
});

function v1Host(name: string): CgroupHost {
  const host: CgroupHost = { mode: "hybrid", v1Mounts: new Map(), v1Own: new Map() };
  for (const c of ["memory", "cpuacct", "pids", "devices"]) {
    const mount = join(tmp, name, c);
    mkdirSync(join(mount, "own"), { recursive: true });
    host.v1Mounts.set(c, mount);
    host.v1Own.set(c, c === "memory" ? "/own" : "/");
  }
  return host;
}

describe("planCgroup", () => {
  test("v1: nsbox's own cgroup as the parent", () => {
    const host = v1Host("a");
    const plan = planV1(host, "id1", undefined, undefined);
    expect(createV1(host, "id1", undefined, undefined).record).toEqual(plan);
    // no device rules given: no devices cgroup
    expect(plan.created).toEqual(["memory/own", "cpuacct", "pids"].map((d) => join(tmp, "a", d, "nsbox-id1")));
  });

  test("v1: a --cgroup-parent with missing levels (made and recorded by nsbox)", () => {
    const host = v1Host("b");
    const plan = planV1(host, "id2", undefined, "/x/y");
    expect(plan.created).toContain(join(tmp, "b", "pids", "x", "y"));
    expect(createV1(host, "id2", undefined, "/x/y").record).toEqual(plan);
    // the next container finds the levels made and recorded: the same plan again
    expect(createV1(host, "id3", undefined, "/x/y").record).toEqual(planV1(host, "id3", undefined, "/x/y"));
  });

  test("v2: nsbox.slice beside nsbox's own cgroup", () => {
    const mount = join(tmp, "v2");
    mkdirSync(join(mount, "svc", "own"), { recursive: true });
    for (const d of [mount, join(mount, "svc")]) {
      writeFileSync(join(d, "cgroup.controllers"), "memory pids cpu\n");
      writeFileSync(join(d, "cgroup.subtree_control"), "memory pids cpu\n");
    }
    const host: CgroupHost = { mode: "v2", v2Mount: mount, v2Own: "/svc/own", v1Mounts: new Map(), v1Own: new Map() };
    const plan = planV2(host, "id4", undefined, undefined);
    // nsbox.slice is missing: created and recorded, as createV2 does (its files are the kernel's, absent here)
    expect(plan.created).toEqual([join(mount, "svc", "nsbox.slice"), join(mount, "svc", "nsbox.slice", "nsbox-id4")]);
    mkdirSync(join(mount, "svc", "nsbox.slice"));
    writeFileSync(join(mount, "svc", "nsbox.slice", "cgroup.controllers"), "memory pids cpu\n");
    writeFileSync(join(mount, "svc", "nsbox.slice", "cgroup.subtree_control"), "memory pids cpu\n");
    // made by someone else, not recorded: not nsbox's to remove, in the plan and in the record alike
    const again = planV2(host, "id5", undefined, undefined);
    expect(again.created).toEqual([join(mount, "svc", "nsbox.slice", "nsbox-id5")]);
    expect(createV2(host, "id5", undefined, undefined).record).toEqual(again);
  });
});
