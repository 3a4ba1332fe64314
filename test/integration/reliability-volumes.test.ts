/**
 * Volume and tmpfs targets (issue 10, point 3): `-v DIR:/` exited 0 and silently
 * ignored the volume. nsbox refuses /, /dev itself, and what is at or under the
 * kernel filesystems it mounts itself (/proc, /sys with /sys/fs/cgroup,
 * /dev/pts); other paths under /dev stay allowed (a device such as /dev/fuse,
 * /dev/shm). The rule is stated in the message and in the README.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isOneNsboxLine, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("rel-volumes");
let vol = "";

beforeAll(() => {
  vol = join(ctx.tmp, "vol");
  mkdirSync(vol);
  writeFileSync(join(vol, "file"), "from the host\n");
});

describe("refused targets: exit 125, one line naming the flag, nothing run", () => {
  test.each([
    ["--volume", "/"],
    ["--volume", "/.."],
    ["--volume", "/dev"],
    ["--volume", "/dev/"],
    ["--volume", "/proc"],
    ["--volume", "/proc/sys"],
    ["--volume", "/sys"],
    ["--volume", "/sys/fs/cgroup"],
    ["--volume", "/dev/pts"],
    ["--volume", "/dev/pts/ptmx"],
    ["--tmpfs", "/"],
    ["--tmpfs", "/proc"],
    ["--tmpfs", "/sys/fs/cgroup"],
  ])("%s on %s", async (flag, target) => {
    const value = flag === "--volume" ? `${vol}:${target}` : target;
    const r = await ctx.run(["--net", "none", flag, value, ctx.rootfs, "echo", "ran"]);
    expect({ code: r.code, stdout: r.stdout, oneLine: isOneNsboxLine(r.stderr) }).toEqual({ code: 125, stdout: "", oneLine: true });
    expect(r.stderr).toContain(`invalid ${flag} "${value}"`);
    expect(r.stderr).toContain("cannot be a mount target");
  });
});

describe("allowed targets under /dev", () => {
  test("a host file bound at /dev/hostfile is readable", async () => {
    const r = await ctx.run(["--net", "none", "-v", `${join(vol, "file")}:/dev/hostfile:ro`, ctx.rootfs, "cat", "/dev/hostfile"]);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: "from the host\n", stderr: "" });
  });
  test("a directory bound on /dev/shm replaces nsbox's, the device nodes stay", async () => {
    const r = await ctx.run(["--net", "none", "-v", `${vol}:/dev/shm`, ctx.rootfs, "sh", "-c", "cat /dev/shm/file && test -c /dev/null && echo ok"]);
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: "from the host\nok\n", stderr: "" });
  });
  test("--tmpfs /dev/shm:size=1m sets the size of /dev/shm", async () => {
    const r = await ctx.run(["--net", "none", "--tmpfs", "/dev/shm:size=1m", ctx.rootfs, "sh", "-c", "df -k /dev/shm | tail -1"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split(/\s+/)[1]).toBe("1024");
  });
});
