/**
 * Resource flags land in the kernel: each limit is read back from the container's
 * own cgroup files, inside the container (its /sys/fs/cgroup) and on the host (at
 * the paths `nsbox inspect` gives), in the files of the host's layout (cgroup v1
 * on v1 and hybrid hosts, v2 on pure v2 hosts). Also the cgroup namespace: what
 * /proc/self/cgroup and /sys/fs/cgroup show inside, and that they are read-only.
 *
 * No cgroup of these containers may be left anywhere afterwards (checked after
 * every test, see test/helpers/cgroup.ts).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import { FILES, HOST, hostPath, insidePath, onlineCpus, randomSuffix, readTrim, useCgroupSuite, V1_CPU_PERIOD, V2 } from "../helpers/cgroup.ts";
import { isOneNsboxLine } from "../helpers/nsbox.ts";

const s = useCgroupSuite("cgroup-limits");
const MiB = 1024 * 1024;
/** what v1 memory files read when unlimited (PAGE_COUNTER_MAX pages): anything from 2^62 up */
const V1_UNLIMITED = 2n ** 62n;

/** Runs sh -c SCRIPT in a container with flags; returns stdout (the run must succeed). */
async function sh(flags: string[], script: string): Promise<string> {
  const r = await s.run([...flags, s.rootfs, "sh", "-c", script]);
  if (r.code !== 0 || r.stderr !== "") throw new Error(`nsbox run ${flags.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Reads cgroup files inside a container (one value per line). */
async function readInside(flags: string[], ...files: string[]): Promise<string[]> {
  const out = await sh(flags, `for f in ${files.join(" ")}; do if [ -e "$f" ]; then cat "$f"; else echo MISSING; fi; done`);
  return out.trim().split("\n");
}

/** runc's (and nsbox's) conversion of cpu.shares to cgroup v2 cpu.weight. */
const sharesToWeight = (shares: number) => Math.floor(1 + ((shares - 2) * 9999) / 262142);

describe(`limits land in the kernel (${HOST.mode} host: cgroup ${V2 ? "v2" : "v1"} files)`, () => {
  test("--memory 64m: 67108864 in the memory limit, inside the container and at the host path inspect gives", async () => {
    expect(await readInside(["--memory", "64m"], insidePath(FILES.memoryLimit))).toEqual(["67108864"]);
    // without the flag: no limit (so the value above came from the flag)
    const unlimited = await readInside([], insidePath(FILES.memoryLimit));
    if (V2) expect(unlimited).toEqual(["max"]);
    else expect(BigInt(unlimited[0] as string)).toBeGreaterThanOrEqual(V1_UNLIMITED);

    const name = `mem-${randomSuffix()}`;
    const c = await s.detach(name, ["-m", "64m", "--pids-limit", "20", "--cpus", "0.5", s.rootfs, "sleep", "60"]);
    try {
      expect(c.Cgroup?.Version).toBe(V2 ? 2 : 1);
      const paths = c.Cgroup?.Paths ?? {};
      // the container's own cgroup: nsbox-<its id>, and its PID 1 is in it
      for (const dir of Object.values(paths)) expect(basename(dir)).toBe(`nsbox-${c.Id}`);
      expect(readTrim(hostPath(paths, FILES.procs)).split("\n")).toContain(String(c.State.Pid));
      expect(readTrim(hostPath(paths, FILES.memoryLimit))).toBe("67108864");
      expect(readTrim(hostPath(paths, FILES.pidsMax))).toBe("20");
      if (V2) expect(readTrim(hostPath(paths, FILES.cpuMax))).toBe("50000 100000");
      else expect([readTrim(hostPath(paths, FILES.cpuMax)), readTrim(hostPath(paths, V1_CPU_PERIOD))]).toEqual(["50000", "100000"]);
      // and nsbox stats reads the same cgroup
      const st = await s.stats(name);
      expect({ id: st.id, name: st.name, memoryLimit: st.memoryLimit, pids: st.pids, pidsLimit: st.pidsLimit }).toEqual({
        id: c.Id,
        name,
        memoryLimit: 64 * MiB,
        pids: 1,
        pidsLimit: 20,
      });
      expect(st.memoryUsage).toBeGreaterThan(0);
    } finally {
      await s.killAndRemove(name, c.Cgroup?.Paths);
    }
  });

  test("--pids-limit 20: pids.max is 20 (max without the flag)", async () => {
    expect(await readInside(["--pids-limit", "20"], insidePath(FILES.pidsMax))).toEqual(["20"]);
    expect(await readInside([], insidePath(FILES.pidsMax))).toEqual(["max"]);
  });

  test("--cpus 0.5: a CFS quota of 50000 per 100000 us", async () => {
    if (V2) {
      expect(await readInside(["--cpus", "0.5"], insidePath(FILES.cpuMax))).toEqual(["50000 100000"]);
      expect(await readInside(["--cpus", "1.5"], insidePath(FILES.cpuMax))).toEqual(["150000 100000"]);
    } else {
      expect(await readInside(["--cpus", "0.5"], insidePath(FILES.cpuMax), insidePath(V1_CPU_PERIOD))).toEqual(["50000", "100000"]);
      expect(await readInside(["--cpus", "1.5"], insidePath(FILES.cpuMax), insidePath(V1_CPU_PERIOD))).toEqual(["150000", "100000"]);
    }
  });

  test(`--cpu-shares 512: ${V2 ? `cpu.weight ${sharesToWeight(512)} (runc's conversion)` : "cpu.shares 512"}`, async () => {
    const want = V2 ? String(sharesToWeight(512)) : "512";
    expect(await readInside(["--cpu-shares", "512"], insidePath(FILES.cpuWeight))).toEqual([want]);
    expect(await readInside(["--cpu-shares", "4096"], insidePath(FILES.cpuWeight))).toEqual([V2 ? String(sharesToWeight(4096)) : "4096"]);
  });

  test(`--cpu-weight 200: ${V2 ? "cpu.weight 200" : "refused on cgroup v1 (a v2 setting): exit 125, one line naming --cpu-shares"}`, async () => {
    if (V2) {
      expect(await readInside(["--cpu-weight", "200"], insidePath(FILES.cpuWeight))).toEqual(["200"]);
      return;
    }
    const r = await s.run(["--cpu-weight", "200", s.rootfs, "true"]);
    expect(r.code).toBe(125);
    expect(isOneNsboxLine(r.stderr)).toBe(true);
    expect(r.stderr).toContain("--cpu-shares");
  });

  test("--cpuset-cpus 0: the kernel lets the container run on CPU 0 only", async () => {
    const out = await sh(["--cpuset-cpus", "0"], `cat ${insidePath(FILES.cpusetCpus)}; grep Cpus_allowed_list /proc/self/status`);
    expect(out).toBe("0\nCpus_allowed_list:\t0\n");
    const cpus = onlineCpus();
    if (cpus.length > 1) {
      const last = cpus[cpus.length - 1] as number;
      expect(await sh(["--cpuset-cpus", String(last)], "grep Cpus_allowed_list /proc/self/status")).toBe(`Cpus_allowed_list:\t${last}\n`);
      // without the flag: the CPUs nsbox itself may use (those of this test process)
      const own = /^Cpus_allowed_list:.*$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[0];
      expect(await sh([], "grep Cpus_allowed_list /proc/self/status")).toBe(`${own}\n`);
    }
  });

  test(`--memory-reservation 32m: ${V2 ? "memory.low" : "memory.soft_limit_in_bytes"} is 33554432`, async () => {
    expect(await readInside(["-m", "64m", "--memory-reservation", "32m"], insidePath(FILES.memoryReservation))).toEqual(["33554432"]);
    expect(await readInside(["--memory-reservation", "16m"], insidePath(FILES.memoryReservation))).toEqual(["16777216"]);
  });
});

/**
 * --memory-swap as docker documents it (docs.docker.com, "Runtime options with
 * Memory, CPUs, and GPUs"): it is memory PLUS swap; equal to --memory: no swap;
 * -1: unlimited swap; unset: swap allowed up to --memory (memory+swap = 2x);
 * 0: ignored, treated as unset. cgroup v1 holds memory+swap
 * (memory.memsw.limit_in_bytes), v2 the swap part alone (memory.swap.max).
 */
describe("--memory-swap (docker's semantics)", () => {
  // Whether the kernel accounts swap: the file exists in a container's cgroup.
  let swapAccounting: boolean | undefined;
  const hasSwapAccounting = async () => {
    swapAccounting ??= (await readInside(["-m", "64m"], insidePath(FILES.swapLimit)))[0] !== "MISSING";
    return swapAccounting;
  };

  /** [flags, what v1's memsw holds (bytes or "unlimited"), what v2's swap.max holds] */
  const cases: [string, string[], string, string][] = [
    ["128m with -m 64m: 64m of swap", ["-m", "64m", "--memory-swap", "128m"], String(128 * MiB), String(64 * MiB)],
    ["equal to --memory: no swap", ["-m", "64m", "--memory-swap", "64m"], String(64 * MiB), "0"],
    ["-1: unlimited swap", ["-m", "64m", "--memory-swap", "-1"], "unlimited", "max"],
    ["unset: twice --memory", ["-m", "64m"], String(128 * MiB), String(64 * MiB)],
    ["0: ignored, as if unset (docker)", ["-m", "64m", "--memory-swap", "0"], String(128 * MiB), String(64 * MiB)],
  ];
  test.each(cases)("--memory-swap %s", async (_what, flags, v1Want, v2Want) => {
    if (!(await hasSwapAccounting())) {
      // no swap accounting: unset is fine (no file), a value is refused naming the reason
      const r = await s.run([...flags, s.rootfs, "true"]);
      if (!flags.includes("--memory-swap")) expect(r.code).toBe(0);
      else {
        expect(r.code).toBe(125);
        expect(r.stderr).toContain("swap accounting");
      }
      return;
    }
    const r = await s.run([...flags, s.rootfs, "cat", insidePath(FILES.memoryLimit), insidePath(FILES.swapLimit)]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const [mem, swap] = r.stdout.trim().split("\n") as [string, string];
    expect(mem).toBe(String(64 * MiB));
    if (V2) expect(swap).toBe(v2Want);
    else if (v1Want === "unlimited") expect(BigInt(swap)).toBeGreaterThanOrEqual(V1_UNLIMITED);
    else expect(swap).toBe(v1Want);
  });
});

describe("cgroup namespace and /sys/fs/cgroup inside", () => {
  test("private (the default): /proc/self/cgroup shows / for every hierarchy", async () => {
    const out = await sh(["-m", "64m"], "cat /proc/self/cgroup");
    const lines = out.trim().split("\n");
    // as many hierarchies as the host has
    expect(lines).toHaveLength(readFileSync("/proc/self/cgroup", "utf8").trim().split("\n").length);
    for (const l of lines) expect(l).toMatch(/^\d+:[^:]*:\/$/);
    // the same with --cgroupns private spelled out
    expect(await sh(["--cgroupns", "private"], "cat /proc/self/cgroup")).toBe(out);
  });

  test("--cgroupns host: /proc/self/cgroup shows the host's paths, the container's own nsbox-<id> cgroups", async () => {
    const name = `cgns-${randomSuffix()}`;
    const c = await s.detach(name, ["--cgroupns", "host", "-m", "64m", s.rootfs, "sh", "-c", "cat /proc/self/cgroup > /tmp/cg; exec sleep 60"]);
    try {
      const file = `/proc/${c.State.Pid}/root/tmp/cg`;
      expect(
        await (async () => {
          for (let i = 0; i < 100 && !existsSync(file); i++) await Bun.sleep(50);
          return existsSync(file);
        })(),
      ).toBe(true);
      const inside = readFileSync(file, "utf8");
      // what the container saw is what the host sees of it
      expect(inside).toBe(readFileSync(`/proc/${c.State.Pid}/cgroup`, "utf8"));
      const paths = c.Cgroup?.Paths ?? {};
      const lines = inside.trim().split("\n");
      if (V2) {
        const rel = (paths.unified as string).slice((HOST.v2Mount as string).length);
        expect(lines).toEqual([`0::${rel}`]);
        expect(rel.endsWith(`/nsbox-${c.Id}`)).toBe(true);
      } else {
        for (const [ctrl, dir] of Object.entries(paths)) {
          const mount = HOST.v1Mounts.get(ctrl) as string;
          const line = lines.find((l) => (l.split(":")[1] ?? "").split(",").includes(ctrl));
          expect(line?.split(":")[2]).toBe(dir.slice(mount.length));
          expect(line?.endsWith(`/nsbox-${c.Id}`)).toBe(true);
        }
      }
    } finally {
      await s.killAndRemove(name, c.Cgroup?.Paths);
    }
  });

  test("/sys/fs/cgroup inside is the container's own cgroup: its limits and processes", async () => {
    const out = await sh(
      ["-m", "64m", "--pids-limit", "20"],
      `cat ${insidePath(FILES.memoryLimit)} ${insidePath(FILES.pidsMax)}; echo procs; cat ${insidePath(FILES.procs)}`,
    );
    const [mem, pids, marker, ...procs] = out.trim().split("\n");
    expect([mem, pids, marker]).toEqual(["67108864", "20", "procs"]);
    // the container's own processes only, in its pid namespace: PID 1 (sh) and cat
    expect(procs).toContain("1");
    expect(procs.length).toBeLessThanOrEqual(2);
  });

  test.each([["private"], ["host"]])("--cgroupns %s: /sys/fs/cgroup is read-only inside", async (ns) => {
    // the container's own cgroup dir as the container names it: with a private
    // namespace /sys/fs/cgroup[/memory]/, with the host's the host's tree + its path
    const memDir = ns === "private" ? insidePath(FILES.memoryLimit).replace(/\/[^/]*$/, "") : V2 ? "/sys/fs/cgroup" : (HOST.v1Mounts.get("memory") as string);
    const self = V2 ? "cut -d: -f3 /proc/self/cgroup" : "grep -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' /proc/self/cgroup | cut -d: -f3";
    const script = [
      `p=$(${self}); d=${memDir}$p`,
      "touch /sys/fs/cgroup/x 2>/dev/null && echo touch-ok || echo touch-failed",
      "touch $d/x 2>/dev/null && echo touch-ok || echo touch-failed",
      // (a child cgroup made by mistake is removed at once, or the container's cgroup could not go)
      "mkdir $d/nsbox-evil 2>/dev/null && { echo mkdir-ok; rmdir $d/nsbox-evil; } || echo mkdir-failed",
      `{ echo 1073741824 > $d/${FILES.memoryLimit.file}; } 2>/dev/null && echo write-ok || echo write-failed`,
      `cat $d/${FILES.memoryLimit.file}`,
      "grep -q ' /sys/fs/cgroup ro[, ]' /proc/self/mountinfo && echo ro-mount",
    ].join("\n");
    const out = await sh(["-m", "64m", "--cgroupns", ns as string], script);
    expect(out).toBe("touch-failed\ntouch-failed\nmkdir-failed\nwrite-failed\n67108864\nro-mount\n");
  });
});
