/**
 * Device rules: docker's flags, docker's default list, what a list comes to
 * (runc's emulator), the cgroup v1 writes, and the cgroup v2 program, run here
 * on a small eBPF interpreter written from the instruction set's definition
 * (not from the compiler's constants), against the v1 semantics.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { devicesV1Writes, expectedDevicesList } from "../../src/cgroup/devices-v1.ts";
import {
  cgroupLine,
  DEFAULT_RULE_SET,
  type DeviceRule,
  defaultDeviceRules,
  deviceFromNode,
  deviceRules,
  effectiveRules,
  isAllowed,
  parseDeviceCgroupRule,
  parseDeviceFlag,
  privilegedRules,
  reduceRules,
  rulesNeedCgroup,
  splitDev,
  splitDeviceFlag,
} from "../../src/security/devices.ts";
import { deviceFilterProgram } from "../../src/security/devices-bpf.ts";

// ---------------------------------------------------------------- an eBPF interpreter

/**
 * Runs a BPF_PROG_TYPE_CGROUP_DEVICE program on one request and returns r0.
 * Only what a device program may use: 32-bit loads from the context (r1),
 * ALU (64 and 32 bit), conditional jumps, exit. Anything else throws, so the
 * test fails on an instruction the kernel's verifier would have to judge.
 */
function runProgram(prog: Uint8Array, type: "c" | "b", major: number, minor: number, access: string): number {
  const ctx = new DataView(new ArrayBuffer(12));
  const acc = (access.includes("m") ? 1 : 0) | (access.includes("r") ? 2 : 0) | (access.includes("w") ? 4 : 0);
  ctx.setUint32(0, (acc << 16) | (type === "b" ? 1 : 2), true);
  ctx.setUint32(4, major, true);
  ctx.setUint32(8, minor, true);
  const v = new DataView(prog.buffer, prog.byteOffset, prog.byteLength);
  const n = prog.byteLength / 8;
  const reg = new Array<bigint | "ctx" | undefined>(11).fill(undefined);
  reg[1] = "ctx";
  const M64 = (1n << 64n) - 1n;
  const num = (r: number): bigint => {
    const x = reg[r];
    if (typeof x !== "bigint") throw new Error(`r${r} is read before it is set (or is the context pointer)`);
    return x;
  };
  for (let pc = 0, steps = 0; ; pc++, steps++) {
    if (pc < 0 || pc >= n) throw new Error(`pc ${pc} is outside the program (${n} instructions)`);
    if (steps > 10000) throw new Error("no exit");
    const code = v.getUint8(pc * 8);
    const dst = v.getUint8(pc * 8 + 1) & 0xf;
    const src = v.getUint8(pc * 8 + 1) >> 4;
    const off = v.getInt16(pc * 8 + 2, true);
    const imm = v.getInt32(pc * 8 + 4, true);
    const cls = code & 7;
    if (cls === 1) {
      // LDX: only BPF_MEM | BPF_W from the context
      if (code !== 0x61 || reg[src] !== "ctx") throw new Error(`unexpected load ${code.toString(16)}`);
      if (off < 0 || off + 4 > 12 || off % 4) throw new Error(`context read at ${off}`);
      reg[dst] = BigInt(ctx.getUint32(off, true));
      continue;
    }
    if (cls === 4 || cls === 7) {
      // ALU (32) / ALU64
      const op = code & 0xf0;
      const b = code & 8 ? num(src) : BigInt(imm) & M64;
      const a = op === 0xb0 ? 0n : num(dst);
      let r: bigint;
      if (op === 0xb0) r = b;
      else if (op === 0x50) r = a & b;
      else if (op === 0x40) r = a | b;
      else if (op === 0x70) r = cls === 4 ? (a & 0xffffffffn) >> (b & 31n) : a >> (b & 63n);
      else if (op === 0x60) r = a << b;
      else if (op === 0x00) r = a + b;
      else throw new Error(`unexpected ALU op ${code.toString(16)}`);
      reg[dst] = cls === 4 ? r & 0xffffffffn : r & M64;
      continue;
    }
    if (cls === 5) {
      const op = code & 0xf0;
      if (op === 0x90) {
        if (code !== 0x95) throw new Error(`unexpected ${code.toString(16)}`);
        return Number(num(0));
      }
      const a = num(dst);
      const b = code & 8 ? num(src) : BigInt(imm) & M64;
      let jump: boolean;
      if (op === 0x10) jump = a === b;
      else if (op === 0x50) jump = a !== b;
      else if (op === 0x00) jump = true;
      else throw new Error(`unexpected jump ${code.toString(16)}`);
      if (jump) pc += off;
      continue;
    }
    throw new Error(`unexpected instruction class ${cls}`);
  }
}

const rule = (t: string) => parseDeviceCgroupRule(t);

// ---------------------------------------------------------------- parsing

describe("--device-cgroup-rule", () => {
  test("docker's syntax, wildcards, access subsets (normalized to rwm order)", () => {
    expect(rule("c 1:3 rwm")).toEqual({ allow: true, type: "c", major: 1, minor: 3, access: "rwm" });
    expect(rule("b 7:* rw")).toEqual({ allow: true, type: "b", major: 7, minor: undefined, access: "rw" });
    expect(rule("c *:* m")).toEqual({ allow: true, type: "c", major: undefined, minor: undefined, access: "m" });
    expect(rule("c *:5 wr")).toEqual({ allow: true, type: "c", major: undefined, minor: 5, access: "rw" });
    expect(rule("c 10:200 mwr").access).toBe("rwm");
    expect(rule("a *:* rwm")).toEqual({ allow: true, type: "a", access: "rwm" });
  });

  test.each([
    ["", "TYPE MAJOR:MINOR ACCESS"],
    ["c 1:3", "TYPE MAJOR:MINOR ACCESS"],
    ["x 1:3 rwm", "TYPE MAJOR:MINOR ACCESS"],
    ["c 1 rwm", "TYPE MAJOR:MINOR ACCESS"],
    ["c 1:3 rwx", "TYPE MAJOR:MINOR ACCESS"],
    ["c -1:3 r", "TYPE MAJOR:MINOR ACCESS"],
    ["c 1:3 rr", "repeats a letter"],
    ["c 4096:0 r", "major 4096 is out of range"],
    ["c 1:1048576 r", "minor 1048576 is out of range"],
    ["a 1:3 rwm", '"a" means every device'],
    ["a *:* r", '"a" means every device'],
  ])("refuses %p in one line naming it", (text, why) => {
    let msg = "";
    try {
      rule(text);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain(`invalid --device-cgroup-rule "${text}"`);
    expect(msg).toContain(why);
    expect(msg).not.toContain("\n");
  });

  test("cgroupLine spells rules as devices.list does", () => {
    expect(cgroupLine(rule("c 1:3 mwr"))).toBe("c 1:3 rwm");
    expect(cgroupLine(rule("b 7:* r"))).toBe("b 7:* r");
    expect(cgroupLine({ allow: false, access: "rwm" })).toBe("a *:* rwm");
    expect(cgroupLine({ allow: true, type: "c", major: -1, minor: -1, access: "m" })).toBe("c *:* m");
  });
});

describe("--device", () => {
  test("HOST, HOST:CTR, HOST:ACCESS, HOST:CTR:ACCESS", () => {
    expect(splitDeviceFlag("/dev/fuse")).toEqual({ host: "/dev/fuse", path: "/dev/fuse", access: "rwm" });
    expect(splitDeviceFlag("/dev/sdb:/dev/xvdb")).toEqual({ host: "/dev/sdb", path: "/dev/xvdb", access: "rwm" });
    expect(splitDeviceFlag("/dev/sdb:r")).toEqual({ host: "/dev/sdb", path: "/dev/sdb", access: "r" });
    expect(splitDeviceFlag("/dev/sdb:/dev/xvdb:wr")).toEqual({ host: "/dev/sdb", path: "/dev/xvdb", access: "rw" });
  });

  test.each([
    ["dev/fuse", "must be absolute"],
    ["/dev/sdb:xvdb", "must be absolute"],
    ["/dev/sdb:/dev/../etc/x", 'must not contain ".."'],
    ["/dev/sdb:/dev/xvdb:rx", "letters of rwm"],
    ["/dev/sdb:/a:r:w", "HOST[:CONTAINER][:ACCESS]"],
    ["/dev/sdb::r", "HOST[:CONTAINER][:ACCESS]"],
  ])("refuses %p", (text, why) => {
    expect(() => splitDeviceFlag(text)).toThrow(why);
    expect(() => splitDeviceFlag(text)).toThrow(`invalid --device "${text}"`);
  });

  test("the node and rule carry the host's numbers, mode and owner", () => {
    // 259:65537 has a minor above 255 and a major above 255: the split must use every dev_t field
    const rdev = Number((65537n & 0xffn) | ((259n & 0xfffn) << 8n) | ((65537n & ~0xffn) << 12n));
    expect(splitDev(rdev)).toEqual({ major: 259, minor: 65537 });
    const r = deviceFromNode("/dev/nvme0n2", "/dev/xvdb", "r", { kind: "b", rdev, mode: 0o60660, uid: 0, gid: 6 });
    expect(r.node).toEqual({ path: "/dev/xvdb", hostPath: "/dev/nvme0n2", type: "b", major: 259, minor: 65537, fileMode: 0o660, uid: 0, gid: 6 });
    expect(r.rule).toEqual({ allow: true, type: "b", major: 259, minor: 65537, access: "r" });
  });

  test("a real device, a missing path, a file that is not a device", () => {
    const [n] = parseDeviceFlag("/dev/null:/dev/mynull");
    expect(n?.node).toMatchObject({ path: "/dev/mynull", type: "c", major: 1, minor: 3 });
    expect(() => parseDeviceFlag("/dev/nsbox-no-such-device")).toThrow("--device /dev/nsbox-no-such-device: no such file");
    expect(() => parseDeviceFlag("/etc/hostname")).toThrow("--device /etc/hostname: is not a device");
  });

  test.skipIf(!existsSync("/dev/net/tun"))("a directory gives every device node below it, at the same place below CONTAINER", () => {
    const found = parseDeviceFlag("/dev/net:/dev/mynet:r");
    expect(found.map((d) => d.node.path)).toContain("/dev/mynet/tun");
    expect(found.find((d) => d.node.path === "/dev/mynet/tun")).toMatchObject({
      node: { hostPath: "/dev/net/tun", type: "c", major: 10, minor: 200 },
      rule: { allow: true, type: "c", major: 10, minor: 200, access: "r" },
    });
  });

  test("a directory without device nodes is refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "nsbox-devdir-"));
    try {
      writeFileSync(join(dir, "plain"), "");
      expect(() => parseDeviceFlag(dir)).toThrow(`--device ${dir}: the directory holds no device node`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- the lists

/** Decisions every default container must get, as docker's. */
const DEFAULT_DECISIONS: [type: "c" | "b", major: number, minor: number, access: string, allowed: boolean, what: string][] = [
  ["c", 1, 3, "rw", true, "/dev/null"],
  ["c", 1, 5, "rw", true, "/dev/zero"],
  ["c", 1, 7, "rw", true, "/dev/full"],
  ["c", 1, 8, "rw", true, "/dev/random"],
  ["c", 1, 9, "rw", true, "/dev/urandom"],
  ["c", 5, 0, "rw", true, "/dev/tty"],
  ["c", 5, 1, "rw", true, "/dev/console"],
  ["c", 5, 2, "rw", true, "/dev/ptmx"],
  ["c", 136, 5, "rw", true, "/dev/pts/5"],
  ["c", 10, 200, "rw", true, "/dev/net/tun"],
  ["b", 254, 0, "r", false, "/dev/vda (read)"],
  ["b", 254, 0, "w", false, "/dev/vda (write)"],
  ["b", 254, 0, "m", true, "mknod /dev/vda"],
  ["c", 1, 1, "r", false, "/dev/mem"],
  ["c", 1, 11, "w", false, "/dev/kmsg"],
  ["c", 10, 229, "rw", false, "/dev/fuse"],
  ["c", 10, 237, "rw", false, "/dev/loop-control"],
  ["b", 7, 0, "r", false, "/dev/loop0"],
  ["c", 4, 1, "rw", false, "/dev/tty1"],
  ["c", 999, 999, "m", true, "mknod of any char device"],
];

describe("docker's default list", () => {
  test("deny everything, then docker's and runc's exceptions", () => {
    const rules = defaultDeviceRules();
    expect(rules[0]).toEqual({ allow: false, access: "rwm" });
    expect(deviceRules({ privileged: false })).toEqual(rules);
    const set = effectiveRules(rules);
    // (in the order the rules named them; sorted here to read them)
    const byNumber = [...set.exceptions].sort(
      (a, b) => (a.major ?? -1) - (b.major ?? -1) || (a.minor ?? -1) - (b.minor ?? -1) || String(a.type).localeCompare(String(b.type)),
    );
    expect({ ...set, exceptions: byNumber }).toEqual({
      defaultAllow: false,
      exceptions: [
        { allow: true, type: "b", major: undefined, minor: undefined, access: "m" },
        { allow: true, type: "c", major: undefined, minor: undefined, access: "m" },
        { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
        { allow: true, type: "c", major: 1, minor: 5, access: "rwm" },
        { allow: true, type: "c", major: 1, minor: 7, access: "rwm" },
        { allow: true, type: "c", major: 1, minor: 8, access: "rwm" },
        { allow: true, type: "c", major: 1, minor: 9, access: "rwm" },
        { allow: true, type: "c", major: 5, minor: 0, access: "rwm" },
        { allow: true, type: "c", major: 5, minor: 1, access: "rwm" },
        { allow: true, type: "c", major: 5, minor: 2, access: "rwm" },
        { allow: true, type: "c", major: 10, minor: 200, access: "rwm" },
        { allow: true, type: "c", major: 136, minor: undefined, access: "rwm" },
      ],
    });
    expect(rulesNeedCgroup(rules)).toBe(true);
  });

  test("the written-out set is what the reduction gives, in the same order (effectiveRules returns it)", () => {
    expect(reduceRules(defaultDeviceRules())).toEqual(DEFAULT_RULE_SET);
    expect(JSON.stringify(reduceRules(defaultDeviceRules()))).toBe(JSON.stringify(DEFAULT_RULE_SET));
    expect(effectiveRules(defaultDeviceRules())).toBe(DEFAULT_RULE_SET);
    expect(rulesNeedCgroup(defaultDeviceRules())).toBe(true);
  });

  test("exceptions keep the order the rules first named them (v1's devices.list, OCI's listed order)", () => {
    const set = effectiveRules([
      { allow: false, access: "rwm" },
      { allow: true, type: "c", major: 10, minor: 229, access: "rwm" },
      { allow: true, type: "b", major: 8, minor: 20, access: "rw" },
      { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
      { allow: true, type: "c", major: 10, minor: 229, access: "r" },
    ]);
    expect(set.exceptions.map((e) => `${e.type} ${e.major}:${e.minor} ${e.access}`)).toEqual(["c 10:229 rwm", "b 8:20 rw", "c 1:3 rwm"]);
  });

  test.each(DEFAULT_DECISIONS)("%s %d:%d %s -> %p (%s)", (type, major, minor, access, allowed) => {
    expect(isAllowed(effectiveRules(defaultDeviceRules()), type, major, minor, access)).toBe(allowed);
  });

  test("cgroup v1: reset with deny a, then each exception; devices.list as the kernel shows it", () => {
    const writes = devicesV1Writes(defaultDeviceRules());
    expect(writes[0]).toEqual(["devices.deny", "a"]);
    expect(writes.slice(1).every(([f]) => f === "devices.allow")).toBe(true);
    expect(writes.slice(1).map(([, l]) => l)).toContain("c 136:* rwm");
    expect(expectedDevicesList(defaultDeviceRules())).toEqual(
      [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 10:200 rwm",
        "c 136:* rwm",
      ].sort(),
    );
  });

  test("--privileged: allow everything, which needs no cgroup", () => {
    const rules = deviceRules({ privileged: true, devices: [rule("c 1:3 r")], rules: ["b 7:* rwm"] });
    expect(rules).toEqual(privilegedRules());
    expect(effectiveRules(rules)).toEqual({ defaultAllow: true, exceptions: [] });
    expect(rulesNeedCgroup(rules)).toBe(false);
    expect(rulesNeedCgroup([])).toBe(false);
    expect(devicesV1Writes(rules)).toEqual([["devices.allow", "a"]]);
    expect(expectedDevicesList(rules)).toEqual(["a *:* rwm"]);
  });

  test("--device and --device-cgroup-rule come after docker's part, before runc's", () => {
    const dev = rule("c 10:229 rw");
    const rules = deviceRules({ privileged: false, devices: [dev], rules: ["b 7:* rwm"] });
    const i = rules.findIndex((r) => r.type === "c" && r.major === 10 && r.minor === 229 && r.allow);
    const fuseDeny = rules.findIndex((r) => r.major === 10 && r.minor === 229 && !r.allow);
    expect(fuseDeny).toBeLessThan(i); // docker's deny of fuse does not undo the user's allow
    expect(rules[i + 1]).toEqual({ allow: true, type: "b", major: 7, minor: undefined, access: "rwm" });
    const set = effectiveRules(rules);
    expect(isAllowed(set, "c", 10, 229, "rw")).toBe(true);
    expect(isAllowed(set, "c", 10, 229, "m")).toBe(true);
    expect(isAllowed(set, "b", 7, 3, "rw")).toBe(true);
    expect(isAllowed(set, "b", 8, 0, "r")).toBe(false);
    expect(() => deviceRules({ privileged: false, rules: ["c 1:3"] })).toThrow('invalid --device-cgroup-rule "c 1:3"');
  });
});

describe("runc's emulator", () => {
  test("an allow after deny a adds access; a deny takes it from the exact rule only", () => {
    const set = effectiveRules([{ allow: false }, rule("c 1:3 rw"), rule("c 1:3 m"), { allow: false, type: "c", major: 1, minor: 3, access: "w" }]);
    expect(set.exceptions).toEqual([{ allow: true, type: "c", major: 1, minor: 3, access: "rm" }]);
  });

  test("a deny that would punch a hole in a wildcard allow is refused", () => {
    expect(() => effectiveRules([{ allow: false }, rule("c 1:* rw"), { allow: false, type: "c", major: 1, minor: 3, access: "r" }])).toThrow(
      'cannot take access away from the wider rule "c 1:* rw"',
    );
  });

  test("deny-by-default lists need one rule granting all; allow-by-default lists refuse on any overlap", () => {
    const w = effectiveRules([{ allow: false }, rule("c 1:3 r"), rule("c 1:* w")]);
    expect(isAllowed(w, "c", 1, 3, "r")).toBe(true);
    expect(isAllowed(w, "c", 1, 3, "w")).toBe(true);
    expect(isAllowed(w, "c", 1, 3, "rw")).toBe(false); // as the kernel: no single exception grants both
    const b = effectiveRules([{ allow: true }, { allow: false, type: "b", major: 8, minor: undefined, access: "w" }]);
    expect(b.defaultAllow).toBe(true);
    expect(isAllowed(b, "b", 8, 1, "r")).toBe(true);
    expect(isAllowed(b, "b", 8, 1, "rw")).toBe(false);
    expect(isAllowed(b, "c", 8, 1, "rw")).toBe(true);
    expect(devicesV1Writes(b.exceptions.length ? [{ allow: true }, ...b.exceptions] : [])).toEqual([
      ["devices.allow", "a"],
      ["devices.deny", "b 8:* w"],
    ]);
  });

  test("a later a rule resets everything before it", () => {
    expect(effectiveRules([rule("c 1:3 rwm"), { allow: false, type: "a" }, rule("c 1:5 r")]).exceptions).toEqual([
      { allow: true, type: "c", major: 1, minor: 5, access: "r" },
    ]);
  });
});

// ---------------------------------------------------------------- the v2 program

describe("cgroup v2 device program", () => {
  const prog = deviceFilterProgram(defaultDeviceRules());

  test("is whole eBPF instructions, loads the context first, ends in exit", () => {
    expect(prog.byteLength % 8).toBe(0);
    expect(prog[0]).toBe(0x61); // r2 = *(u32 *)(r1 + 0)
    expect(prog[prog.byteLength - 8]).toBe(0x95);
  });

  test.each(DEFAULT_DECISIONS)("default rules: %s %d:%d %s -> %p (%s)", (type, major, minor, access, allowed) => {
    expect(runProgram(prog, type, major, minor, access)).toBe(allowed ? 1 : 0);
  });

  test("decides as the v1 semantics for every request over a grid of rule lists", () => {
    const lists: DeviceRule[][] = [
      defaultDeviceRules(),
      deviceRules({ privileged: false, rules: ["b 7:* rwm", "c 10:237 r", "c *:3 w"] }),
      deviceRules({ privileged: false, devices: [rule("b 254:0 r")] }),
      privilegedRules(),
      [
        { allow: true },
        { allow: false, type: "b", major: 254, minor: undefined, access: "rw" },
        { allow: false, type: "c", major: 1, minor: 1, access: "rwm" },
      ],
      [{ allow: false }, rule("c 1:3 r"), rule("c 1:* w"), rule("b *:0 m")],
    ];
    const accesses = ["r", "w", "m", "rw", "rm", "wm", "rwm"];
    const devs: ["c" | "b", number, number][] = [
      ["c", 1, 1],
      ["c", 1, 3],
      ["c", 1, 5],
      ["c", 5, 3],
      ["c", 10, 237],
      ["c", 136, 0],
      ["b", 7, 0],
      ["b", 7, 9],
      ["b", 254, 0],
      ["b", 254, 1],
      ["b", 8, 0],
    ];
    let checked = 0;
    for (const rules of lists) {
      const set = effectiveRules(rules);
      const p = deviceFilterProgram(rules);
      for (const [t, ma, mi] of devs)
        for (const a of accesses) {
          const want = isAllowed(set, t, ma, mi, a) ? 1 : 0;
          const got = runProgram(p, t, ma, mi, a);
          if (got !== want) throw new Error(`${t} ${ma}:${mi} ${a} with [${rules.map(cgroupLine).join(", ")}]: program ${got}, v1 ${want}`);
          checked++;
        }
    }
    expect(checked).toBe(lists.length * devs.length * accesses.length);
  });

  test("a --device-cgroup-rule opens what the default list refuses", () => {
    const p = deviceFilterProgram(deviceRules({ privileged: false, rules: ["b 7:* rwm"] }));
    expect(runProgram(prog, "b", 7, 0, "rw")).toBe(0);
    expect(runProgram(p, "b", 7, 0, "rw")).toBe(1);
    expect(runProgram(p, "b", 8, 0, "r")).toBe(0);
    expect(runProgram(p, "c", 1, 3, "rw")).toBe(1);
  });

  test("--privileged is one instruction pair: allow", () => {
    const p = deviceFilterProgram(privilegedRules());
    expect(p.byteLength).toBe(6 * 8 + 2 * 8); // the context loads, then r0 = 1; exit
    expect(runProgram(p, "b", 254, 0, "rwm")).toBe(1);
  });
});
