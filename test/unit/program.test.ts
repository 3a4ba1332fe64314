import { describe, expect, test } from "bun:test";
import { parseCgroupHost } from "../../src/cgroup/detect.ts";
import { defaultDevices, defaultMounts } from "../../src/config/defaults.ts";
import type { ContainerSpec } from "../../src/config/spec.ts";
import { LogParser } from "../../src/container/logs.ts";
import { buildPrograms, overlayVolatile } from "../../src/container/plan.ts";
import { C, encode, encodePrograms, type Field, MK, type Op, W } from "../../src/native/program.ts";

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

/** The format as the comment at the top of program.ts states it, written the plain way (little-endian: x86_64, arm64). */
function reference(ops: readonly Op[]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return b;
  };
  const pad = (b: Buffer, to: number) => Buffer.concat([b, Buffer.alloc(to - b.length)]);
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    return Buffer.concat([u32(b.length), pad(b, (b.length + 1 + 3) & ~3)]);
  };
  const field = (f: Field): Buffer => {
    if (typeof f === "number") return u32(f);
    if (typeof f === "string") return str(f);
    if (f instanceof Uint8Array) return Buffer.concat([u32(f.length), pad(Buffer.from(f), (f.length + 3) & ~3)]);
    return Buffer.concat([u32(f.length), ...f.map((x) => (typeof x === "number" ? u32(x) : str(x)))]);
  };
  for (const op of ops) {
    const body = Buffer.concat(op.fields.map(field));
    parts.push(u32(op.code), u32(8 + body.length), body);
  }
  return Buffer.concat(parts);
}

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
  test("a bind's mount point is made as its source is (C looks), any other mount's as a directory", () => {
    const s = spec();
    s.mounts.push({ destination: "/etc/hosts", type: "bind", source: "/etc/hosts", options: ["bind", "ro"] });
    s.mounts.push({ destination: "/data", type: "none", source: "/srv", options: ["rbind", "rprivate"] });
    const mk = (dst: string) => plan(s).c.find((o) => o.code === C.MOUNT && o.fields[1] === dst)?.fields[5];
    expect(mk("/etc/hosts")).toBe(MK.SOURCE);
    expect(mk("/data")).toBe(MK.SOURCE);
    expect(mk("/proc")).toBe(MK.DIR);
    // the propagation word is a second step, not data for the kernel
    const data = plan(s).c.filter((o) => o.code === C.MOUNT && o.fields[1] === "/data");
    expect(data.map((o) => [o.fields[3], o.fields[4]])).toEqual([
      [0x1000 | 0x4000, ""],
      [0x40000 | 0x4000, ""],
    ]);
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
    expect(() => encode([{ code: 1, fields: [["ok", "a\0b"]], what: "" }])).toThrow(/NUL/);
  });
  test("the encoder writes what the format says, byte for byte (W then C in one buffer)", () => {
    // grows past its first 16 KiB (a long environment, a large filter)
    const big = new Uint8Array(20001).map((_, i) => i & 0xff);
    const odd: Op[] = [
      { code: C.MOUNT, fields: ["", "/", "", 0x44000, "", 0, 0], what: "" },
      { code: C.SETID, fields: [4294967295, -1, [], [1, 2, 3]], what: "" },
      { code: C.HOSTNAME, fields: ["héllo ☃ 𝄞"], what: "" },
      { code: C.SECCOMP, fields: [0, new Uint8Array([1, 2, 3, 4, 5])], what: "" },
      { code: C.SECCOMP, fields: [0, big], what: "" },
      { code: C.EXEC, fields: [0, 7, "sh", ["sh", "-c", "x".repeat(5000)], Array.from({ length: 300 }, (_, i) => `V${i}=${"é".repeat(i)}`)], what: "" },
      { code: C.PIVOT, fields: [], what: "" },
    ];
    const { w, c } = plan(spec());
    for (const [wops, cops] of [
      [w, c],
      [w, odd],
      [[], odd],
    ] as [Op[], Op[]][]) {
      const got = encodePrograms(wops, cops);
      const want = [reference(wops), reference(cops)];
      expect(got.wlen).toBe(want[0]?.length as number);
      expect(got.clen).toBe(want[1]?.length as number);
      expect(Buffer.from(got.buf.subarray(0, got.wlen)).equals(want[0] as Buffer)).toBe(true);
      expect(Buffer.from(got.buf.subarray(got.wlen, got.wlen + got.clen)).equals(want[1] as Buffer)).toBe(true);
    }
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
  test("a mount point with a space (\\040), a path with colons, named hierarchies and lines that are not entries", () => {
    const h = parseCgroupHost(
      mi(["/sys/fs/cgroup/my\\040pids rw - cgroup cgroup rw,pids", "/sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd"]),
      "12:pids:/a:b/c\n1:name=systemd:/s\nx:memory:/m\n:cpu:/c\nnot a line\n",
    );
    expect(h.v1Mounts.get("pids")).toBe("/sys/fs/cgroup/my pids");
    expect(h.v1Mounts.has("name=systemd")).toBe(false);
    expect(h.v1Own.get("pids")).toBe("/a:b/c");
    expect([...h.v1Own.keys()]).toEqual(["pids"]);
    expect(h.v2Own).toBeUndefined();
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
