/**
 * The cgroup v2 VM is what test/vm/run.sh promises: cgroup2 is the only
 * hierarchy, mounted at /sys/fs/cgroup, with the memory, pids and cpu
 * controllers, and nsbox runs a container there.
 *
 * Outside such a host (our build machines are hybrid: v1 controllers plus an
 * almost empty cgroup2 at /sys/fs/cgroup/unified) every test here is skipped.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { join } from "node:path";

const CGROUP2_SUPER_MAGIC = 0x63677270;
const PROJECT = join(import.meta.dir, "../..");
const NSBOX = join(PROJECT, "dist/nsbox");

/** [mount point, fs type] of every cgroup filesystem in /proc/self/mountinfo. */
function cgroupMounts(): [string, string][] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .flatMap((line) => {
      const sep = line.indexOf(" - ");
      if (sep < 0) return [];
      const type = line.slice(sep + 3).split(" ")[0] ?? "";
      const point = line.slice(0, sep).split(" ")[4] ?? "";
      return type === "cgroup" || type === "cgroup2" ? [[point, type] as [string, string]] : [];
    });
}

const mounts = cgroupMounts();
const pureV2 = mounts.some(([p, t]) => p === "/sys/fs/cgroup" && t === "cgroup2") && !mounts.some(([, t]) => t === "cgroup");
const root = process.getuid?.() === 0;

describe.skipIf(!pureV2)("cgroup v2 VM", () => {
  test("/sys/fs/cgroup is cgroup2", () => {
    expect(mounts).toContainEqual(["/sys/fs/cgroup", "cgroup2"]);
    expect(statfsSync("/sys/fs/cgroup").type).toBe(CGROUP2_SUPER_MAGIC);
  });

  test("no cgroup v1 hierarchy is mounted", () => {
    expect(mounts.filter(([, t]) => t === "cgroup")).toEqual([]);
    // one line, "0::/path": the process is in the v2 hierarchy only
    const own = readFileSync("/proc/self/cgroup", "utf8").trim().split("\n");
    expect(own).toHaveLength(1);
    expect(own[0]).toMatch(/^0::\//);
  });

  test("the root offers the memory, pids and cpu controllers", () => {
    const controllers = readFileSync("/sys/fs/cgroup/cgroup.controllers", "utf8").trim().split(/\s+/);
    expect(controllers).toEqual(expect.arrayContaining(["memory", "pids", "cpu"]));
  });

  test("overlayfs is available (its module is loaded)", () => {
    expect(readFileSync("/proc/filesystems", "utf8")).toMatch(/\toverlay\n/);
  });

  test.skipIf(!root)("nsbox runs a container as PID 1", () => {
    const rootfs = process.env.NSBOX_TEST_ROOTFS ?? join(PROJECT, "dist/rootfs/busybox");
    expect(existsSync(NSBOX)).toBe(true);
    expect(existsSync(join(rootfs, "bin/sh"))).toBe(true);
    const r = Bun.spawnSync([NSBOX, "run", rootfs, "/bin/sh", "-c", "echo $$"], { stdout: "pipe", stderr: "pipe" });
    // stderr is shown only when something went wrong (nsbox may warn on stderr)
    const got = { exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.exitCode === 0 ? "" : r.stderr.toString() };
    expect(got).toEqual({ exitCode: 0, stdout: "1\n", stderr: "" });
  });

  // No devices controller on v2: this holds only if nsbox's BPF_PROG_TYPE_CGROUP_DEVICE program loaded, attached and decides.
  test.skipIf(!root)("device rules: a made disk node cannot be opened, /dev/null can", () => {
    const rootfs = process.env.NSBOX_TEST_ROOTFS ?? join(PROJECT, "dist/rootfs/busybox");
    const script = "mknod /dev/vda b 254 0 && echo made; head -c 1 /dev/vda; echo x > /dev/null && echo null-ok";
    const r = Bun.spawnSync([NSBOX, "run", "--net", "none", rootfs, "/bin/sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
    expect({ exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() }).toEqual({
      exitCode: 0,
      stdout: "made\nnull-ok\n",
      stderr: "head: /dev/vda: Operation not permitted\n",
    });
  });
});
