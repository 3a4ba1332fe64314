import { describe, expect, test } from "bun:test";
import { parseCgroupHost } from "../../src/cgroup/detect.ts";
import { defaultDevices, defaultMounts } from "../../src/config/defaults.ts";
import type { ContainerSpec } from "../../src/config/spec.ts";
import { LogParser } from "../../src/container/logs.ts";
import { buildPrograms, overlayVolatile } from "../../src/container/plan.ts";
import { C, encode, W } from "../../src/native/program.ts";

function spec(extra: Partial<ContainerSpec["nsbox"]> = {}): ContainerSpec {
  return {
    ociVersion: "1.2.0",
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ["sh"], env: ["PATH=/bin"], cwd: "/" },
    root: { path: "/rootfs", readonly: false },
    hostname: "h",
    mounts: defaultMounts(),
    linux: { namespaces: ["pid", "mount", "uts", "ipc", "network", "cgroup"].map((type) => ({ type }) as never), devices: defaultDevices() },
    nsbox: { rootfsArg: "/rootfs", init: false, interactive: false, overlay: true, cgroups: true, network: { mode: "none", ports: [] }, ...extra },
  };
}
const plan = (s: ContainerSpec) =>
  buildPrograms({ spec: s, lowerDir: "/rootfs", upperDir: "/u", workDir: "/w", mergedDir: "/m", joinFds: {}, stdio: [-1, -1, -1] });

describe("the child's program", () => {
  test("order: namespaces, READY, rootfs, pivot, GO, cgroupns, identity, exec", () => {
    const { w, c } = plan(spec());
    expect(w.map((o) => o.code)).toEqual([W.CLONE, W.EXIT]);
    const codes = c.map((o) => o.code);
    const at = (code: number) => codes.indexOf(code);
    expect(at(C.UNSHARE)).toBeLessThan(at(C.SYNC));
    expect(at(C.PIVOT)).toBeGreaterThan(at(C.ROOT));
    // READY is sent before the rootfs is mounted, GO awaited after pivot_root
    const syncs = c.filter((o) => o.code === C.SYNC).map((o) => o.fields);
    expect(syncs).toEqual([
      [1, 0],
      [0, 1],
    ]);
    expect(codes.lastIndexOf(C.SYNC)).toBeGreaterThan(at(C.PIVOT));
    expect(codes.lastIndexOf(C.UNSHARE)).toBeGreaterThan(codes.lastIndexOf(C.SYNC)); // cgroupns after the cgroup join
    expect(codes.at(-1)).toBe(C.EXEC);
    expect(codes.indexOf(C.SETID)).toBeLessThan(codes.indexOf(C.EXEC));
  });
  test("a user namespace waits for its id maps before mounting", () => {
    const s = spec();
    s.linux.namespaces.push({ type: "user" });
    const codes = plan(s).c.map((o) => o.code);
    expect(codes.indexOf(C.SYNC)).toBeLessThan(codes.indexOf(C.MOUNT));
    // devices are bound from the host, not made with mknod
    expect(codes).not.toContain(C.MKNOD);
  });
  test("encoding is 4-byte aligned, sizes cover each op", () => {
    const buf = encode([
      { code: C.HOSTNAME, fields: ["abc"], what: "" },
      { code: C.SETID, fields: [1, 2, [3, 4]], what: "" },
    ]);
    const dv = new DataView(buf.buffer);
    expect(dv.getUint32(0, true)).toBe(C.HOSTNAME);
    const size = dv.getUint32(4, true);
    expect(size % 4).toBe(0);
    expect(dv.getUint32(size, true)).toBe(C.SETID);
    expect(size + dv.getUint32(size + 4, true)).toBe(buf.length);
    expect(() => encode([{ code: 1, fields: ["a\0b"], what: "" }])).toThrow(/NUL/);
  });
});

describe("CRI logs", () => {
  test("partial lines are joined, streams kept apart", () => {
    const p = new LogParser();
    const a = p.push("2026-01-01T00:00:00.000000001Z stdout P hel");
    expect(a).toEqual([]);
    const b = p.push("lo\n2026-01-01T00:00:00.000000002Z stderr F oops\n2026-01-01T00:00:00.000000003Z stdout F  world\n");
    expect(b).toEqual([
      { time: "2026-01-01T00:00:00.000000002Z", stream: "stderr", text: "oops" },
      { time: "2026-01-01T00:00:00.000000001Z", stream: "stdout", text: "hello world" },
    ]);
  });
});

describe("cgroup layout detection", () => {
  const mi = (lines: string[]) => lines.map((l, i) => `${30 + i} 23 0:${28 + i} / ${l}`).join("\n");
  test("hybrid: v1 controllers and a cgroup2 mount", () => {
    const h = parseCgroupHost(
      mi([
        "/sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
        "/sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
        "/sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
      ]),
      "4:memory:/a/b\n2:cpu,cpuacct:/\n0::/\n",
    );
    expect(h.mode).toBe("hybrid");
    expect(h.v1Mounts.get("cpuacct")).toBe("/sys/fs/cgroup/cpu,cpuacct");
    expect(h.v1Own.get("memory")).toBe("/a/b");
  });
  test("v2 and v1", () => {
    expect(parseCgroupHost(mi(["/sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate"]), "0::/user.slice/x.scope\n")).toMatchObject({
      mode: "v2",
      v2Own: "/user.slice/x.scope",
    });
    expect(parseCgroupHost(mi(["/sys/fs/cgroup/pids rw - cgroup cgroup rw,pids"]), "1:pids:/\n").mode).toBe("v1");
  });
});

describe("overlayVolatile: the overlay's volatile option from Linux 5.10", () => {
  test("by kernel release", () => {
    expect(overlayVolatile("6.18.44-fc-v857")).toBe(true);
    expect(overlayVolatile("5.10.0-28-amd64")).toBe(true);
    expect(overlayVolatile("5.9.16")).toBe(false);
    expect(overlayVolatile("4.19.0")).toBe(false);
    expect(overlayVolatile("unknown")).toBe(false);
  });
});
