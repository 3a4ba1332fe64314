/**
 * Device rules on a real kernel (issue 9, point 5): a default container may make
 * any device node (docker's "c *:* m", "b *:* m") but open only docker's
 * devices (null, zero, full, random, urandom, tty, console, ptmx, its pts,
 * /dev/net/tun); --device, --device-cgroup-rule and --privileged open more.
 *
 * The same file runs on the hybrid build host (the container's own cgroup in
 * the v1 devices hierarchy: its devices.list is checked too) and in the cgroup
 * v2 VM (test/vm/run.sh: a BPF_PROG_TYPE_CGROUP_DEVICE program on the
 * container's cgroup). Every test ends with the suite's check that no cgroup of
 * this file's containers is left.
 *
 * The probe opens a node and prints "PATH: ok" or "PATH: <the error>"; the
 * devices cgroup answers "Operation not permitted" (EPERM) before the driver
 * sees the open, so any other answer (ENXIO for /dev/tty without a terminal)
 * means the rules let it through. Nothing here writes to a device: /dev/kmsg is
 * opened for writing and closed, loop devices are opened for reading.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { HOST, useCgroupSuite, V2 } from "../helpers/cgroup.ts";
import { isOneNsboxLine } from "../helpers/nsbox.ts";

const s = useCgroupSuite("security-devices");
const root = process.getuid?.() === 0;
const V1_DEVICES = !V2 && HOST.v1Mounts.has("devices");
const EPERM = "Operation not permitted";

/** sh functions r, w, rw PATH: open it that way (in a subshell) and print "PATH: ok" or "PATH: <the error>". */
const PROBE = (
  [
    ["r", "<"],
    ["w", ">"],
    ["rw", "<>"],
  ] as const
)
  .map(([name, redir]) => `${name}() { if err=$( (exec 3${redir}"$1") 2>&1 ); then echo "$1: ok"; else echo "$1: $(echo "$err" | sed 's/.*: //')"; fi; }`)
  .join("\n");

/** Runs a script in a default (or flagged) container; returns its output lines as PATH -> answer, and the rest. */
async function probe(flags: string[], script: string): Promise<{ code: number; answers: Record<string, string>; stdout: string; stderr: string }> {
  const r = await s.run([...flags, s.rootfs, "sh", "-c", `${PROBE}\n${script}`]);
  const answers: Record<string, string> = {};
  for (const line of r.stdout.split("\n")) {
    const m = /^(\/\S+): (.*)$/.exec(line);
    if (m) answers[m[1] as string] = m[2] as string;
  }
  return { code: r.code, answers, stdout: r.stdout, stderr: r.stderr };
}

/** docker's + runc's default list as the kernel's devices.list shows it (sorted). */
const DEFAULT_LIST = [
  "b *:* m",
  "c *:* m",
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
].sort();

const sortedLines = (text: string) => text.split("\n").filter(Boolean).sort();

describe.skipIf(!root)("device rules", () => {
  test("default: docker's devices open; a made node of the host's disk or /dev/mem does not", async () => {
    const r = await probe(
      [],
      [
        "for d in null zero full random urandom; do rw /dev/$d; done",
        "rw /dev/ptmx",
        "rw /dev/tty", // no controlling terminal: ENXIO, from the tty driver, past the cgroup
        "mknod /dev/vda b 254 0 && echo mknod-vda-ok",
        "r /dev/vda",
        "w /dev/vda",
        "mknod /dev/mem c 1 1 && echo mknod-mem-ok",
        "r /dev/mem",
        "mknod /dev/k c 1 11 && echo mknod-kmsg-ok",
        "w /dev/k",
        "mknod /dev/p7 c 136 7 && echo mknod-pts-ok",
        "rw /dev/p7", // a pts that does not exist: the driver answers, not the cgroup
      ].join("\n"),
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    for (const d of ["null", "zero", "full", "random", "urandom", "ptmx"]) expect(r.answers[`/dev/${d}`]).toBe("ok");
    expect(r.answers["/dev/tty"]).not.toBe(EPERM);
    expect(r.answers["/dev/p7"]).not.toBe(EPERM);
    expect(r.stdout).toContain("mknod-vda-ok");
    expect(r.stdout).toContain("mknod-mem-ok");
    expect(r.stdout).toContain("mknod-kmsg-ok");
    expect(r.stdout).toContain("mknod-pts-ok");
    expect(r.answers["/dev/vda"]).toBe(EPERM);
    expect(r.answers["/dev/mem"]).toBe(EPERM);
    expect(r.answers["/dev/k"]).toBe(EPERM);
  });

  test.skipIf(!V1_DEVICES)("cgroup v1: the container's own devices cgroup lists docker's rules, and goes with it", async () => {
    const c = await s.detach(`dev-${Date.now()}`, [s.rootfs, "sh", "-c", "cat /sys/fs/cgroup/devices/devices.list; exec sleep 60"]);
    const dir = c.Cgroup?.Paths.devices;
    expect(dir).toBeDefined();
    expect(dir as string).toMatch(/\/nsbox-[0-9a-f]{64}$/);
    expect(sortedLines(readFileSync(join(dir as string, "devices.list"), "utf8"))).toEqual(DEFAULT_LIST);
    // and the container's view of it is the same cgroup
    const logs = await s.ctx.nsbox(["logs", c.Id]);
    expect(sortedLines(logs.stdout)).toEqual(DEFAULT_LIST);
    await s.killAndRemove(c.Id, c.Cgroup?.Paths);
    expect(existsSync(dir as string)).toBe(false);
  });

  test("--device HOST:CTR:w gives that access to that node only", async () => {
    const r = await probe(
      ["--device", "/dev/kmsg:/dev/mykmsg:w"],
      ["ls -l /dev/mykmsg", "w /dev/mykmsg", "cat /sys/fs/cgroup/devices/devices.list 2>/dev/null || true"].join("\n"),
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^c.* 1, +11 .* \/dev\/mykmsg$/m);
    expect(r.answers["/dev/mykmsg"]).toBe("ok");
    if (V1_DEVICES) expect(sortedLines(r.stdout).filter((l) => /^[abc] /.test(l))).toEqual([...DEFAULT_LIST, "c 1:11 w"].sort());
  });

  test.skipIf(!existsSync("/dev/net/tun"))("--device DIR:CTR gives every node below DIR, allowed, at the same place below CTR", async () => {
    const r = await probe(["--device", "/dev/net:/dev/mynet"], ["ls -l /dev/mynet/tun", "r /dev/mynet/tun"].join("\n"));
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^c.* 10, +200 .* \/dev\/mynet\/tun$/m);
    // opening the clone device without a request succeeds; the rule let it through
    expect(r.answers["/dev/mynet/tun"]).toBe("ok");
  });

  test("--device HOST:CTR with --userns: the host's node is bound on the container's path", async () => {
    // a user namespace cannot mknod: the node is bound, and it must be HOST's, not the host's CTR path
    const r = await probe(["--userns", "--device", "/dev/zero:/dev/myzero"], "ls -l /dev/myzero");
    // --userns needs an idmapped rootfs, which the VM's initramfs cannot give: nothing to check there
    if (r.code === 125 && r.stderr.includes("cannot make an idmapped mount")) return;
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^c.* 1, +5 .* \/dev\/myzero$/m);
  });

  test.skipIf(!existsSync("/dev/loop-control"))("--device /dev/loop-control is openable inside", async () => {
    const r = await probe(["--device", "/dev/loop-control"], "rw /dev/loop-control");
    expect(r.code).toBe(0);
    expect(r.answers["/dev/loop-control"]).toBe("ok");
    const d = await probe([], "mknod /dev/loop-control c 10 237; rw /dev/loop-control");
    expect(d.answers["/dev/loop-control"]).toBe(EPERM);
  });

  test("--device-cgroup-rule opens what it names, and nothing more", async () => {
    const r = await probe(
      ["--device-cgroup-rule", "c 1:11 w", "--device-cgroup-rule", "b 7:* r"],
      ["mknod /dev/k c 1 11; w /dev/k", "mknod /dev/mem c 1 1; r /dev/mem", "mknod /dev/l3 b 7 3; r /dev/l3", "mknod /dev/l3w b 7 3; w /dev/l3w"].join("\n"),
    );
    expect(r.code).toBe(0);
    expect(r.answers["/dev/k"]).toBe("ok");
    expect(r.answers["/dev/mem"]).toBe(EPERM);
    // the kernel may have no loop driver (ENXIO): anything but EPERM means the rule let the read through
    expect(r.answers["/dev/l3"]).toBeDefined();
    expect(r.answers["/dev/l3"]).not.toBe(EPERM);
    expect(r.answers["/dev/l3w"]).toBe(EPERM);
  });

  test.skipIf(!existsSync("/dev/loop0"))("--device-cgroup-rule 'b 7:* rwm' lets a loop device node be opened", async () => {
    const r = await probe(["--device-cgroup-rule", "b 7:* rwm"], "mknod /dev/l0 b 7 0; r /dev/l0");
    expect(r.answers["/dev/l0"]).toBe("ok");
    const d = await probe([], "mknod /dev/l0 b 7 0; r /dev/l0");
    expect(d.answers["/dev/l0"]).toBe(EPERM);
  });

  test("--privileged opens a node it made", async () => {
    const r = await probe(["--privileged"], "mknod /dev/k c 1 11; w /dev/k");
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(r.answers["/dev/k"]).toBe("ok");
  });

  describe("bad input: one line, exit 125, nothing created", () => {
    const cases: [string, string[], string][] = [
      ["a --device that does not exist", ["--device", "/dev/nsbox-no-such-device"], "--device /dev/nsbox-no-such-device: no such file"],
      ["a --device that is not a device", ["--device", "/etc/hostname"], "--device /etc/hostname: is not a device"],
      ["a relative --device path", ["--device", "dev/null"], 'invalid --device "dev/null"'],
      ["a bad --device access", ["--device", "/dev/null:/dev/n:rx"], 'invalid --device "/dev/null:/dev/n:rx"'],
      ["a --device-cgroup-rule without access", ["--device-cgroup-rule", "c 1:3"], 'invalid --device-cgroup-rule "c 1:3"'],
      ["a --device-cgroup-rule with a bad type", ["--device-cgroup-rule", "x 1:3 r"], 'invalid --device-cgroup-rule "x 1:3 r"'],
      ["device rules without a cgroup", ["--cgroup-manager", "none", "--device-cgroup-rule", "c 1:11 w"], "--cgroup-manager none"],
    ];
    test.each(cases)("%s", async (_what, flags, message) => {
      const before = s.ctx.leftovers();
      const r = await s.run([...flags, s.rootfs, "true"]);
      expect({ code: r.code, oneLine: isOneNsboxLine(r.stderr) }).toEqual({ code: 125, oneLine: true });
      expect(r.stderr).toContain(message);
      const after = s.ctx.leftovers();
      expect({ state: after.state, containers: after.containers }).toEqual({ state: before.state, containers: before.containers });
    });
  });
});
