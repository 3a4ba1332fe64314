/**
 * Where a container's cgroup goes, and starting nsbox from a populated cgroup.
 *
 *   v1/hybrid  <nsbox's own cgroup in each controller>/nsbox-<id>, in memory,
 *              cpuacct and pids always, devices for the device rules (all but
 *              --privileged), cpu/cpuset when a limit needs them
 *   v2         <parent of nsbox's own cgroup>/nsbox.slice/nsbox-<id> (or
 *              /nsbox-<id> when nsbox runs in the root cgroup): a v2 cgroup that
 *              holds processes (nsbox's own) cannot delegate controllers to a child
 *
 * The last test (v2 only) runs nsbox from a cgroup that also holds another
 * process: that must work, and leave nothing behind.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { cgroupProcs, HOST, killAndWait, randomSuffix, readTrim, removeOwnCgroups, useCgroupSuite, V2 } from "../helpers/cgroup.ts";
import { childrenOf, waitUntil } from "../helpers/nsbox.ts";

const s = useCgroupSuite("cgroup-placement");
const root = process.getuid?.() === 0;

describe(`placement on this ${HOST.mode} host`, () => {
  test(
    V2 ? "v2: beside nsbox's own cgroup, in nsbox.slice (or at the root when nsbox runs there)" : "v1: below nsbox's own cgroup in each controller it needs",
    async () => {
      const name = `place-${randomSuffix()}`;
      const c = await s.detach(name, ["--pids-limit", "20", "--cpus", "0.5", "--cpuset-cpus", "0", s.rootfs, "sleep", "60"]);
      const paths = c.Cgroup?.Paths ?? {};
      try {
        const leaf = `nsbox-${c.Id}`;
        if (V2) {
          const own = HOST.v2Own ?? "/";
          const parent = own === "/" ? "/" : join(dirname(own), "nsbox.slice");
          expect(paths).toEqual({ unified: join(HOST.v2Mount as string, parent, leaf) });
          // the controllers its limits need are enabled for it
          const enabled = readTrim(join(HOST.v2Mount as string, parent, "cgroup.subtree_control")).split(" ");
          expect(enabled).toEqual(expect.arrayContaining(["memory", "pids", "cpu", "cpuset"]));
        } else {
          const want: Record<string, string> = {};
          for (const ctrl of ["memory", "cpuacct", "pids", "devices", "cpu", "cpuset"]) {
            const mount = HOST.v1Mounts.get(ctrl);
            if (mount) want[ctrl] = join(mount, HOST.v1Own.get(ctrl) ?? "/", leaf);
          }
          expect(paths).toEqual(want);
        }
        // PID 1 is in every one of them
        for (const dir of new Set(Object.values(paths))) expect(cgroupProcs(dir)).toContain(c.State.Pid);
      } finally {
        await s.killAndRemove(name, paths);
      }
    },
  );

  test(
    V2
      ? "v2: the container process is born in its cgroup (clone3 CLONE_INTO_CGROUP), never moved there"
      : "v1: the container process is moved into its cgroups, the move's grace period started at nsbox's start",
    async () => {
      // the command's first instruction already runs in the container's cgroup
      const r = await s.run([s.rootfs, "cat", "/proc/self/cgroup"], { env: { NSBOX_TRACE: "1" } });
      expect(r.code).toBe(0);
      const marks = r.stderr
        .split("\n")
        .filter((l) => l.startsWith("[trace]"))
        .map((l) => l.replace(/^\[trace\] +[0-9.]+ ms +[0-9.]+ MiB +/, ""));
      if (V2) {
        expect(marks).toContain("born in its cgroup (CLONE_INTO_CGROUP)");
        expect(marks).not.toContain("cgroup move warm-up started");
        // inside its cgroup namespace, the container's cgroup is its root
        expect(r.stdout).toBe("0::/\n");
      } else {
        expect(marks).not.toContain("born in its cgroup (CLONE_INTO_CGROUP)");
        // first thing: only the helper it needs loads before it, main's modules after it
        // (from its copy in the data root, or through a memfd: see src/native/addon.ts)
        if (root) expect(marks.slice(0, marks.indexOf("cgroup move warm-up started")).map((m) => m.replace(/ \(.*/, ""))).toEqual(["helper loaded"]);
        for (const ctrl of ["memory", "pids"]) expect(r.stdout).toMatch(new RegExp(`^\\d+:${ctrl}:/$`, "m"));
      }
      // the same for a process nsbox exec starts in a running container
      const name = `born-${randomSuffix()}`;
      const c = await s.detach(name, [s.rootfs, "sleep", "60"]);
      try {
        const e = await s.ctx.nsbox(["exec", name, "cat", "/proc/self/cgroup"], { env: { NSBOX_TRACE: "1" } });
        expect(e.code).toBe(0);
        expect(e.stderr.includes("born in its cgroup (CLONE_INTO_CGROUP)")).toBe(V2);
        if (V2) expect(e.stdout).toBe("0::/\n");
        else expect(e.stdout).toMatch(/^\d+:memory:\/$/m);
      } finally {
        await s.killAndRemove(name, c.Cgroup?.Paths ?? {});
      }
    },
  );

  test("without limits: still a cgroup (for stats and to find its processes), with memory, cpu accounting and pids", async () => {
    const name = `nolimit-${randomSuffix()}`;
    const c = await s.detach(name, [s.rootfs, "sleep", "60"]);
    const paths = c.Cgroup?.Paths ?? {};
    try {
      if (V2) expect(Object.keys(paths)).toEqual(["unified"]);
      else expect(Object.keys(paths).sort()).toEqual(["cpuacct", "devices", "memory", "pids"].filter((x) => HOST.v1Mounts.has(x)));
      const st = await s.stats(name);
      expect({ pids: st.pids, memoryLimit: st.memoryLimit, pidsLimit: st.pidsLimit }).toEqual({ pids: 1, memoryLimit: null, pidsLimit: null });
    } finally {
      await s.killAndRemove(name, paths);
    }
  });
});

describe("cgroup v2: nsbox.slice, shared by the containers of nsbox processes in one cgroup", () => {
  const own = HOST.v2Own ?? "/";
  const sliceOf = () => join(HOST.v2Mount as string, dirname(own), "nsbox.slice");
  test.skipIf(!V2 || own === "/")(
    V2
      ? "v2: the container that made nsbox.slice ends first: nsbox.slice goes when the last container does"
      : `v2 only (skipped on this ${HOST.mode} host: no nsbox.slice on cgroup v1)`,
    async () => {
      const slice = sliceOf();
      if (existsSync(slice)) {
        console.log(`${slice} exists already (not made by this test's containers): nothing to check`);
        return;
      }
      const start = () => s.ctx.start(["run", "--net", "none", "--pids-limit", "20", s.rootfs, "sh", "-c", "echo up; exec sleep 60"]);
      const first = start(); // makes nsbox.slice
      try {
        await first.waitFor("up\n");
        expect(existsSync(slice)).toBe(true);
        const second = start();
        try {
          await second.waitFor("up\n");
          expect((await first.stop()).code).toBe(137);
          expect(existsSync(slice)).toBe(true);
        } finally {
          expect((await second.stop()).code).toBe(137);
        }
        // as after a single container: nothing of nsbox's is left beside the test's cgroup
        expect(existsSync(slice)).toBe(false);
      } finally {
        await first.stop();
        await removeOwnCgroups(existsSync(slice) && readdirSync(slice).every((e) => !e.startsWith("nsbox-")) ? [slice] : []);
      }
    },
  );
});

const v2Only = V2
  ? "v2: nsbox started from a cgroup that also holds another process: the container gets its limits, nothing is left"
  : `v2 only, skipped on this ${HOST.mode} host: the no-internal-process rule it tests exists only on a pure cgroup v2 host, and here the test would move processes out of the cgroups this machine's infrastructure put them in`;

describe("cgroup v2: no internal processes", () => {
  test.skipIf(!V2 || !root)(v2Only, async () => {
    const mount = HOST.v2Mount as string;
    const cg = join(mount, `nsbox-test-${randomSuffix()}`);
    const slice = join(mount, "nsbox.slice");
    const sliceExisted = existsSync(slice);
    mkdirSync(cg);
    const sleeper = Bun.spawn(["sleep", "60"], { stdout: "ignore", stderr: "ignore" });
    try {
      writeFileSync(join(cg, "cgroup.procs"), `${sleeper.pid}\n`);
      expect(cgroupProcs(cg)).toEqual([sleeper.pid]);
      // nsbox runs from the test's shell, which first joins the cgroup
      const prefix = ["sh", "-c", `echo $$ > ${cg}/cgroup.procs && exec "$@"`, "sh"];

      // 1. limits, read inside; checked while it runs: nsbox shares cg with the sleep
      const run = s.ctx.start(
        [
          "run",
          "--net",
          "none",
          "-m",
          "64m",
          "--pids-limit",
          "20",
          "--cpus",
          "0.5",
          s.rootfs,
          "sh",
          "-c",
          "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max /proc/self/cgroup; echo ready; exec sleep 60",
        ],
        { prefix },
      );
      try {
        await run.waitFor("ready\n", 20000);
        expect(run.stdout).toBe("67108864\n20\n50000 100000\n0::/\nready\n");
        expect(cgroupProcs(cg).sort()).toEqual([sleeper.pid, run.pid].sort());
        // the container: in /nsbox.slice (beside cg, whose parent is the root)
        const pid1 = childrenOf(run.pid)[0] as number;
        const ctr = readdirSync(slice)
          .filter((e) => /^nsbox-[0-9a-f]{64}$/.test(e))
          .find((e) => cgroupProcs(join(slice, e)).includes(pid1));
        expect(ctr).toBeDefined();
        expect(readTrim(join(slice, ctr as string, "memory.max"))).toBe("67108864");
      } finally {
        const r = await run.stop();
        expect(r.code).toBe(137);
      }

      // 2. a normal exit, seen with the host's cgroup namespace
      const r = await s.ctx.nsbox(
        [
          "run",
          "--net",
          "none",
          "--cgroupns",
          "host",
          "-m",
          "64m",
          s.rootfs,
          "sh",
          "-c",
          "p=$(cut -d: -f3 /proc/self/cgroup); echo $p; cat /sys/fs/cgroup$p/memory.max",
        ],
        { prefix },
      );
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      expect(r.stdout).toMatch(/^\/nsbox\.slice\/nsbox-[0-9a-f]{64}\n67108864\n$/);

      // nothing left: no container cgroup, nsbox.slice gone if nsbox made it, the sleep still in cg
      await s.syncIds();
      expect(s.leftovers()).toEqual([]);
      if (!sliceExisted) expect(await waitUntil(() => !existsSync(slice), 5000)).toBe(true);
      expect(cgroupProcs(cg)).toEqual([sleeper.pid]);
    } finally {
      await killAndWait(sleeper);
      await removeOwnCgroups([cg]);
    }
    expect(existsSync(cg)).toBe(false);
  });
});
