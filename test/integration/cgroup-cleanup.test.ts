/**
 * Bad resource flags are refused before anything exists (one `nsbox: ` line,
 * exit 125, no cgroup and no container state), and a container's cgroup goes
 * with it on every path: a normal exit, a command that cannot start (127/126),
 * a value the kernel refuses after the cgroup was made, SIGKILL of PID 1 in the
 * foreground or of a detached container (`nsbox kill`), and with --cgroup-parent
 * (the levels nsbox created go too; levels that existed stay).
 *
 * Besides the checks in each test, every test ends with the suite's check that
 * no cgroup of this file's containers is left anywhere under /sys/fs/cgroup.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  cgroupDirsOf,
  FILES,
  HOST,
  hostPath,
  insidePath,
  levelsOf,
  nsboxCgroupDirs,
  onlineCpus,
  onlineNodes,
  randomSuffix,
  readTrim,
  removeOwnCgroups,
  testCgroupParent,
  useCgroupSuite,
  V2,
} from "../helpers/cgroup.ts";
import { isOneNsboxLine, waitUntil } from "../helpers/nsbox.ts";

const s = useCgroupSuite("cgroup-cleanup");

/** The cgroup dirs of one container, anywhere. */
const dirsOf = (id: string) => nsboxCgroupDirs().filter((d) => d.endsWith(`/nsbox-${id}`));

/** Every mount point of a cgroup hierarchy nsbox may use. */
const mounts = (): string[] => (V2 ? [HOST.v2Mount as string] : [...new Set(HOST.v1Mounts.values())]);

describe("bad input: exit 125, one line, nothing created", () => {
  const cpus = onlineCpus();
  const nodes = onlineNodes();
  const tooManyCpus = String(Math.max(99, cpus.length + 1));
  const missingCpu = String(Math.max(7, (cpus[cpus.length - 1] ?? 0) + 1));
  const missingNode = String(Math.max(9, (nodes[nodes.length - 1] ?? 0) + 1));
  /** [what, flags, what the message must mention] */
  const cases: [string, string[], string][] = [
    ["--memory abc", ["--memory", "abc"], "--memory"],
    ["--memory 1k (below the 6m minimum)", ["--memory", "1k"], "--memory"],
    ["-m 5m", ["-m", "5m"], "--memory"],
    ["--memory -64m", ["--memory", "-64m"], "--memory"],
    ["--memory-swap without --memory", ["--memory-swap", "128m"], "--memory-swap"],
    ["--memory-swap below --memory", ["-m", "64m", "--memory-swap", "32m"], "--memory-swap"],
    ["--memory-swap abc", ["-m", "64m", "--memory-swap", "abc"], "--memory-swap"],
    ["--memory-reservation above --memory", ["-m", "64m", "--memory-reservation", "128m"], "--memory-reservation"],
    ["--cpus -1", ["--cpus", "-1"], "--cpus"],
    ["--cpus 0", ["--cpus", "0"], "--cpus"],
    ["--cpus abc", ["--cpus", "abc"], "--cpus"],
    ["--cpus 0.001 (a 100 us quota: docker's minimum is 0.01, the kernel's 1 ms)", ["--cpus", "0.001"], "--cpus"],
    [`--cpus ${tooManyCpus} (more CPUs than the machine has)`, ["--cpus", tooManyCpus], "--cpus"],
    ["--cpu-shares 1", ["--cpu-shares", "1"], "--cpu-shares"],
    ["--cpu-shares abc", ["--cpu-shares", "abc"], "--cpu-shares"],
    ["--cpu-weight 0", ["--cpu-weight", "0"], "--cpu-weight"],
    ["--cpu-weight 10001", ["--cpu-weight", "10001"], "--cpu-weight"],
    [`--cpuset-cpus ${missingCpu} (a CPU that is not there)`, ["--cpuset-cpus", missingCpu], "--cpuset-cpus"],
    ["--cpuset-cpus 1-0", ["--cpuset-cpus", "1-0"], "--cpuset-cpus"],
    ["--cpuset-cpus x", ["--cpuset-cpus", "x"], "--cpuset-cpus"],
    [`--cpuset-mems ${missingNode}`, ["--cpuset-mems", missingNode], "--cpuset-mems"],
    ["--pids-limit 0", ["--pids-limit", "0"], "--pids-limit"],
    ["--pids-limit -1", ["--pids-limit", "-1"], "--pids-limit"],
    ["--pids-limit abc", ["--pids-limit", "abc"], "--pids-limit"],
    ["--blkio-weight 5", ["--blkio-weight", "5"], "--blkio-weight"],
    ["--device-read-bps on a missing device", ["--device-read-bps", "/dev/nsbox-no-such-disk:1mb"], "--device-read-bps"],
    ["--device-write-bps on a non-device", ["--device-write-bps", "/etc/passwd:1mb"], "--device-write-bps"],
    ["--cgroup-parent /etc/x (outside the cgroup filesystem)", ["--cgroup-parent", "/etc/x"], "--cgroup-parent"],
    ["--cgroup-parent ../x", ["--cgroup-parent", "../x"], "--cgroup-parent"],
    ["--cgroup-parent /a/../x", ["--cgroup-parent", "/a/../x"], "--cgroup-parent"],
    ["--cgroup-parent with a space", ["--cgroup-parent", "a b"], "--cgroup-parent"],
    ["--cgroupns bogus", ["--cgroupns", "bogus"], "--cgroupns"],
    ["--cgroup-manager bogus", ["--cgroup-manager", "bogus"], "--cgroup-manager"],
    ["--cgroup-manager none with --memory", ["--cgroup-manager", "none", "-m", "64m"], "--cgroup-manager none"],
  ];

  test.each(cases)("%s", async (_what, flags, mention) => {
    await s.syncIds();
    const idsBefore = new Set(s.ids);
    const before = new Set(nsboxCgroupDirs());
    const r = await s.run([...flags, s.rootfs, "true"]);
    expect({ code: r.code, stdout: r.stdout, timedOut: r.timedOut }).toEqual({ code: 125, stdout: "", timedOut: false });
    if (!isOneNsboxLine(r.stderr)) throw new Error(`stderr is not one line starting with "nsbox: ": ${JSON.stringify(r.stderr)}`);
    // the message names the flag it is about
    expect(r.stderr).toContain(mention);
    await s.syncIds();
    // no container was even created (its state dir comes before its cgroup)...
    expect([...s.ids].filter((id) => !idsBefore.has(id))).toEqual([]);
    // ...and no nsbox-* cgroup appeared that is ours (others' containers may come and go meanwhile)
    const fresh = nsboxCgroupDirs().filter((d) => !before.has(d));
    expect(fresh.filter((d) => [...s.ids].some((id) => d.endsWith(id)))).toEqual([]);
    // a bad --cgroup-parent made no directory in any hierarchy
    for (const m of mounts()) for (const p of ["etc/x", "etc", "x", "a b"]) if (flags.includes("--cgroup-parent")) expect(existsSync(join(m, p))).toBe(false);
  });
});

describe("no cgroup left behind", () => {
  test("normal exit: the cgroup existed while the container ran, and is gone after", async () => {
    const r = await s.run(["-m", "64m", "--pids-limit", "50", s.rootfs, "sh", "-c", "cat /proc/1/cgroup > /dev/null; hostname"]);
    expect(r.code).toBe(0);
    const short = r.stdout.trim();
    await s.syncIds();
    const id = [...s.ids].find((i) => i.startsWith(short));
    expect(id).toBeDefined();
    expect(dirsOf(id as string)).toEqual([]);
  });

  test("the container's cgroup exists while it runs (so that its absence afterwards means something)", async () => {
    const run = s.ctx.start(["run", "--net", "none", "-m", "64m", s.rootfs, "sh", "-c", "hostname; sleep 30"]);
    try {
      await run.waitFor(/^[0-9a-f]{12}\n/);
      const short = run.stdout.trim();
      const dirs = await waitUntil(() => {
        const d = nsboxCgroupDirs().filter((x) => x.includes(`/nsbox-${short}`));
        return d.length ? d : undefined;
      }, 5000);
      // v1: memory, cpuacct and pids (at least); v2: one dir
      expect(dirs?.length ?? 0).toBeGreaterThanOrEqual(V2 ? 1 : 3);
      const r = await run.stop();
      expect(r.code).toBe(137);
      for (const d of dirs ?? []) expect(existsSync(d)).toBe(false);
    } finally {
      await run.stop();
    }
  });

  test("a command that does not exist: 127, and no cgroup", async () => {
    const r = await s.run(["-m", "64m", s.rootfs, "/no/such/command"]);
    expect(r.code).toBe(127);
    expect(isOneNsboxLine(r.stderr)).toBe(true);
    await s.syncIds();
    expect(s.ids.size).toBeGreaterThan(0);
    expect(s.leftovers()).toEqual([]);
  });

  test("a command that is not executable: 126, and no cgroup", async () => {
    const r = await s.run(["--pids-limit", "20", s.rootfs, "/etc/passwd"]);
    expect(r.code).toBe(126);
    expect(isOneNsboxLine(r.stderr)).toBe(true);
    expect(s.leftovers()).toEqual([]);
  });

  test("a value the kernel refuses once the cgroup exists (--cpus 0.001: a 100 us quota, below the kernel's 1 ms): 125, one line, no cgroup", async () => {
    await s.syncIds();
    const before = new Set(s.ids);
    const r = await s.run(["--cpus", "0.001", s.rootfs, "true"]);
    expect(r.code).toBe(125);
    if (!isOneNsboxLine(r.stderr)) throw new Error(`stderr is not one line starting with "nsbox: ": ${JSON.stringify(r.stderr)}`);
    expect(r.stderr).toContain("--cpus");
    await s.syncIds();
    const fresh = [...s.ids].filter((id) => !before.has(id));
    for (const id of fresh) expect(dirsOf(id)).toEqual([]);
    // and the container it had begun is gone too
    expect((await s.ctx.nsbox(["ps", "-aq"])).stdout).toBe("");
  });

  test("foreground, PID 1 killed from the host (SIGKILL): 137, no cgroup", async () => {
    const run = s.ctx.start(["run", "--net", "none", "-m", "64m", "--pids-limit", "20", s.rootfs, "sh", "-c", "echo up; sleep 60"]);
    await run.waitFor("up\n");
    const r = await run.stop();
    expect(r.code).toBe(137);
    await s.syncIds();
    expect(s.leftovers()).toEqual([]);
  });

  test("detached, `nsbox kill` (SIGKILL): its cgroup goes when it dies, before `nsbox rm`", async () => {
    const name = `killed-${randomSuffix()}`;
    const c = await s.detach(name, ["-m", "64m", "--pids-limit", "20", "--cpus", "0.5", s.rootfs, "sh", "-c", "sleep 60 & sleep 60 & exec sleep 60"]);
    const paths = c.Cgroup?.Paths ?? {};
    const dirs = [...new Set(Object.values(paths))];
    expect(dirs.length).toBeGreaterThanOrEqual(1);
    for (const d of dirs) expect(existsSync(d)).toBe(true);
    expect(await waitUntil(() => readTrim(hostPath(paths, FILES.pidsCurrent)) === "3", 5000)).toBe(true);
    const k = await s.ctx.nsbox(["kill", name]);
    expect(k.code).toBe(0);
    // the monitor's cleanup removes it, with no other nsbox command
    expect(await waitUntil(() => dirs.every((d) => !existsSync(d)), 10000)).toBe(true);
    const after = await s.inspect(name);
    expect({ status: after.State.Status, exit: after.State.ExitCode }).toEqual({ status: "exited", exit: 137 });
    expect((await s.ctx.nsbox(["rm", name])).code).toBe(0);
  });

  test("detached with --rm, exiting by itself: no cgroup, no container", async () => {
    const r = await s.ctx.run(["-d", "--rm", "--net", "none", "-m", "64m", s.rootfs, "sh", "-c", "sleep 0.2"]);
    expect(r.code).toBe(0);
    const id = r.stdout.trim();
    s.ids.add(id);
    expect(await waitUntil(() => dirsOf(id).length === 0 && !existsSync(join(s.ctx.stateRoot, id)), 10000)).toBe(true);
  });

  test("--cgroup-manager none: no cgroup at all", async () => {
    const name = `nocg-${randomSuffix()}`;
    const c = await s.detach(name, ["--cgroup-manager", "none", s.rootfs, "sleep", "60"]);
    try {
      expect(c.Cgroup).toBeNull();
      expect(dirsOf(c.Id)).toEqual([]);
    } finally {
      await s.killAndRemove(name);
    }
  });
});

describe("--cgroup-parent", () => {
  const parent = testCgroupParent();

  test.skipIf(!parent)(`a parent nsbox creates (${parent ?? "n/a"}) is used, and removed with the container`, async () => {
    const p = parent as string;
    // the levels of the parent that exist now are not nsbox's to remove
    const levels = cgroupDirsOf("/").flatMap((m) => levelsOf(m, p));
    const existed = levels.filter((d) => existsSync(d));
    const name = `parent-${randomSuffix()}`;
    let paths: Record<string, string> = {};
    try {
      const c = await s.detach(name, [
        "--cgroup-parent",
        p,
        "-m",
        "64m",
        "--pids-limit",
        "20",
        s.rootfs,
        "sh",
        "-c",
        `cat ${insidePath(FILES.memoryLimit)} > /tmp/mem; exec sleep 60`,
      ]);
      paths = c.Cgroup?.Paths ?? {};
      // every cgroup of the container is <mount><parent>/nsbox-<id>
      const want = cgroupDirsOf(p).map((d) => join(d, `nsbox-${c.Id}`));
      expect([...new Set(Object.values(paths))].sort()).toEqual(want.sort());
      for (const d of want) expect(existsSync(d)).toBe(true);
      expect(readTrim(hostPath(paths, FILES.memoryLimit))).toBe("67108864");
      expect(readTrim(hostPath(paths, FILES.procs)).split("\n")).toContain(String(c.State.Pid));
      await s.killAndRemove(name, paths);
      // the container's dirs, and the parent levels nsbox made, are gone; the others stay
      for (const d of want) expect(existsSync(d)).toBe(false);
      expect(levels.filter((d) => existsSync(d))).toEqual(existed);
    } finally {
      await s.ctx.nsbox(["rm", "-f", name]);
      // a failed run must not leave our test parent behind (only the levels that did not exist before)
      await removeOwnCgroups(levels.filter((d) => !existed.includes(d)));
    }
  });

  test.skipIf(!parent)("a foreground container with a new --cgroup-parent: the parent goes with it", async () => {
    const p = testCgroupParent() as string;
    const levels = cgroupDirsOf("/").flatMap((m) => levelsOf(m, p));
    const existed = levels.filter((d) => existsSync(d));
    try {
      const r = await s.run(["--cgroup-parent", p, "--cgroupns", "host", "--pids-limit", "20", s.rootfs, "cat", "/proc/self/cgroup"]);
      expect(r.code).toBe(0);
      // the container ran in <parent>/nsbox-<id> in the pids hierarchy (v2: the only one)
      const line = r.stdout.split("\n").find((l) => (V2 ? l.startsWith("0::") : (l.split(":")[1] ?? "").split(",").includes("pids")));
      expect(line?.split(":")[2]).toMatch(new RegExp(`^${p.replace(/[.]/g, "\\.")}/nsbox-[0-9a-f]{64}$`));
      expect(levels.filter((d) => existsSync(d))).toEqual(existed);
    } finally {
      await removeOwnCgroups(levels.filter((d) => !existed.includes(d)));
    }
  });

  test.skipIf(!parent)("a parent that existed before is used and kept", async () => {
    const p = testCgroupParent() as string;
    const levels = cgroupDirsOf("/").flatMap((m) => levelsOf(m, p));
    const existed = levels.filter((d) => existsSync(d));
    const made = levels.filter((d) => !existed.includes(d));
    for (const d of made) mkdirSync(d);
    try {
      const r = await s.run(["--cgroup-parent", p, "-m", "64m", s.rootfs, "cat", insidePath(FILES.memoryLimit)]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: "67108864\n", stderr: "" });
      // nsbox did not create them, so it must not remove them
      for (const d of levels) expect(existsSync(d)).toBe(true);
      // and nothing of the container is left in them
      for (const d of cgroupDirsOf(p)) expect(nsboxCgroupDirs().filter((x) => x.startsWith(`${d}/`))).toEqual([]);
    } finally {
      await removeOwnCgroups(made);
    }
  });

  test.skipIf(!parent)("two containers in one new parent, the one that created it ending first: the parent goes when the last one ends", async () => {
    const p = testCgroupParent() as string;
    const levels = cgroupDirsOf("/").flatMap((m) => levelsOf(m, p));
    const existed = levels.filter((d) => existsSync(d));
    const start = () => s.ctx.start(["run", "--net", "none", "--cgroup-parent", p, "--pids-limit", "20", s.rootfs, "sh", "-c", "echo up; exec sleep 60"]);
    const first = start(); // creates the parent
    try {
      await first.waitFor("up\n");
      const second = start(); // finds it
      try {
        await second.waitFor("up\n");
        expect((await first.stop()).code).toBe(137);
        // the parent is still needed
        for (const d of cgroupDirsOf(p)) expect(existsSync(d)).toBe(true);
      } finally {
        expect((await second.stop()).code).toBe(137);
      }
      // nsbox created these levels: nothing uses them any more
      expect(levels.filter((d) => existsSync(d))).toEqual(existed);
    } finally {
      await first.stop();
      await removeOwnCgroups(levels.filter((d) => !existed.includes(d)));
    }
  });

  test.skipIf(!parent)("a new parent with --cpuset-cpus 0 (v1: a new cpuset level starts with no CPUs): the container runs on CPU 0", async () => {
    const p = testCgroupParent(["memory", "cpuacct", "pids", "cpuset"]);
    if (!p) return; // the cpuset hierarchy puts the test elsewhere (see testCgroupParent)
    const ctrls = ["memory", "cpuacct", "pids", "cpuset"];
    const levels = cgroupDirsOf("/", ctrls).flatMap((m) => levelsOf(m, p));
    const existed = levels.filter((d) => existsSync(d));
    try {
      const r = await s.run(["--cgroup-parent", p, "--cpuset-cpus", "0", s.rootfs, "grep", "Cpus_allowed_list", "/proc/self/status"]);
      expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: "Cpus_allowed_list:\t0\n", stderr: "" });
      expect(levels.filter((d) => existsSync(d))).toEqual(existed);
    } finally {
      await removeOwnCgroups(levels.filter((d) => !existed.includes(d)));
    }
  });
});
