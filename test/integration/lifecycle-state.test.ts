/**
 * What nsbox keeps about containers between commands: unique names, id
 * prefixes, --rm, exit codes recorded by the monitor while no nsbox command
 * runs, the log cap and its rotation, namespaces kept alive with ns --bind,
 * foreground containers in ps, and a monitor that dies.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { cgroupDirsOf, hostPid, ID_RE, inspectOne, leftoversOf, ok, pidAlive, psEntry, psJson, removeAll, runDetached } from "../helpers/lifecycle.ts";
import { isOneNsboxLine, lines, ls, lsRecursive, mountsBelow, NSBOX, useNsbox, waitUntil } from "../helpers/nsbox.ts";

const ctx = useNsbox("lifecycle-state");
ctx.beforeCleanup(() => removeAll(ctx));

/** The state root and data root as they are (to show that a failed command made nothing). */
function snapshot() {
  return { state: lsRecursive(ctx.stateRoot), data: ls(join(ctx.dataRoot, "containers")) };
}

describe("names and references", () => {
  test("names are unique: a clash is one clear error (125) and creates nothing; the name is free again after rm", async () => {
    const first = await runDetached(ctx, ["sleep", "1000"], ["--name", "dup"]);
    const before = snapshot();
    const clash = await ctx.nsbox(["run", "-d", "--net", "none", "--name", "dup", ctx.rootfs, "sleep", "1000"]);
    expect(clash.code).toBe(125);
    expect(clash.stdout).toBe("");
    expect(isOneNsboxLine(clash.stderr)).toBe(true);
    expect(clash.stderr).toContain('"dup"');
    expect(clash.stderr).toContain("already in use");
    expect(snapshot()).toEqual(before);
    // the name still points at the first one, which still runs
    expect(readlinkSync(join(ctx.stateRoot, "names", "dup"))).toBe(first);
    expect((await psEntry(ctx, first))?.State).toBe("running");
    // a foreground run with that name clashes the same way
    const fg = await ctx.nsbox(["run", "--net", "none", "--name", "dup", ctx.rootfs, "true"]);
    expect(fg.code).toBe(125);
    expect(isOneNsboxLine(fg.stderr)).toBe(true);
    expect(snapshot()).toEqual(before);

    // an exited container keeps its name until it is removed
    await ok(ctx, ["stop", "-t", "0", "dup"]);
    const whileExited = await ctx.nsbox(["run", "-d", "--net", "none", "--name", "dup", ctx.rootfs, "true"]);
    expect(whileExited.code).toBe(125);
    await ok(ctx, ["rm", "dup"]);
    const second = await runDetached(ctx, ["sleep", "1000"], ["--name", "dup"]);
    expect(second).not.toBe(first);
    expect((await inspectOne(ctx, "dup")).Id).toBe(second);
    await ok(ctx, ["rm", "-f", "dup"]);
  });

  test("concurrent runs asking for the same name: exactly one gets it, the others fail cleanly", async () => {
    const before = snapshot();
    const rs = await Promise.all(Array.from({ length: 8 }, () => ctx.nsbox(["run", "-d", "--net", "none", "--name", "race", ctx.rootfs, "sleep", "1000"])));
    const won = rs.filter((r) => r.code === 0);
    expect(won.length).toBe(1);
    for (const r of rs.filter((x) => x.code !== 0)) {
      expect(r.code).toBe(125);
      expect(isOneNsboxLine(r.stderr)).toBe(true);
      expect(r.stderr).toContain("already in use");
    }
    const id = won[0]?.stdout.trim() as string;
    expect(readlinkSync(join(ctx.stateRoot, "names", "race"))).toBe(id);
    const after = snapshot();
    expect(after.data).toEqual([...before.data, id].sort());
    expect(ls(ctx.stateRoot).filter((e) => ID_RE.test(e))).toEqual([...before.state.filter((e) => ID_RE.test(e)), id].sort());
    await ok(ctx, ["rm", "-f", "race"]);
  });

  test("a container is found by its full id, any unique prefix or its name; an ambiguous prefix is an error", async () => {
    // Make containers until two share their first hex digit (at most 17).
    const ids: string[] = [];
    let pair: [string, string] | undefined;
    while (!pair) {
      const id = await runDetached(ctx, ["true"]);
      const other = ids.find((x) => x[0] === id[0]);
      if (other) pair = [other, id];
      ids.push(id);
    }
    const [a, b] = pair;
    let common = 0;
    while (a[common] === b[common]) common++;
    const ambiguous = a.slice(0, common);
    const r = await ctx.nsbox(["inspect", ambiguous]);
    expect(r.code).toBe(125);
    expect(isOneNsboxLine(r.stderr)).toBe(true);
    expect(r.stderr).toContain(`"${ambiguous}"`);
    expect(r.stderr).toMatch(/matches \d+ containers/);
    // one digit more is unique
    for (const id of [a, b]) {
      expect((await inspectOne(ctx, id.slice(0, common + 1))).Id).toBe(id);
      expect((await inspectOne(ctx, id)).Id).toBe(id);
      expect((await ok(ctx, ["wait", id.slice(0, 12)])).stdout).toBe("0\n");
    }
    const none = await ctx.nsbox(["inspect", "ffffffffffffffffff0"]);
    expect(none.code).toBe(125);
    expect(none.stderr).toContain("no such container");
    await ok(ctx, ["rm", ...ids]);
  });
});

describe("--rm, exit codes, logs", () => {
  test("--rm: the container is removed when it exits, with no nsbox command run", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "sleep 0.5; exit 2"], ["--rm", "--name", "ephemeral"]);
    expect((await inspectOne(ctx, id)).AutoRemove).toBe(true);
    const gone = await waitUntil(() => !existsSync(join(ctx.stateRoot, id)), 8000);
    expect(gone).toBe(true);
    expect(existsSync(join(ctx.stateRoot, "names", "ephemeral"))).toBe(false);
    expect(await waitUntil(() => leftoversOf(ctx, id).length === 0, 5000)).toBe(true);
    expect(await psEntry(ctx, id)).toBeUndefined();
  });

  test("wait on a --rm container prints its exit code (it is removed only after)", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "sleep 0.5; exit 3"], ["--rm"]);
    const r = await ctx.nsbox(["wait", id]);
    expect(`${r.code} ${r.stdout}${r.stderr}`).toBe("0 3\n");
    expect(await waitUntil(() => !existsSync(join(ctx.stateRoot, id)), 8000)).toBe(true);
  });

  test("without --rm an exited container stays as Exited (N) until rm", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "exit 7"]);
    await ok(ctx, ["wait", id]);
    await Bun.sleep(1200);
    const e = await psEntry(ctx, id);
    expect(e?.Status).toMatch(/^Exited \(7\) (1|2) seconds? ago$/);
    expect((await ok(ctx, ["logs", id])).stdout).toBe("");
    // its host resources are already released, its record is kept
    expect(cgroupDirsOf(id)).toEqual([]);
    expect(existsSync(join(ctx.dataRoot, "containers", id))).toBe(false);
    expect(existsSync(join(ctx.stateRoot, id, "state.json"))).toBe(true);
    await ok(ctx, ["rm", id]);
    expect(await psEntry(ctx, id)).toBeUndefined();
    expect(leftoversOf(ctx, id)).toEqual([]);
  });

  test("the exit code is recorded while no nsbox command runs (the monitor writes it and releases the container)", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "sleep 1; exit 3"]);
    const pid = Number(JSON.parse(readFileSync(join(ctx.stateRoot, id, "state.json"), "utf8")).init.pid);
    expect(pidAlive(pid)).toBe(true);
    // nothing of nsbox runs now but the container's monitor
    await Bun.sleep(2000);
    expect(pidAlive(pid)).toBe(false);
    const exitFile = join(ctx.stateRoot, id, "exit");
    expect(existsSync(exitFile)).toBe(true);
    const status = (JSON.parse(readFileSync(exitFile, "utf8")) as { waitStatus: number }).waitStatus;
    expect((status >> 8) & 0xff).toBe(3);
    // `nsbox cleanup`, run by the monitor, recorded it and gave the cgroup back
    const state = JSON.parse(readFileSync(join(ctx.stateRoot, id, "state.json"), "utf8")) as { phase: string; exit?: { code: number }; released?: boolean };
    expect(state.phase).toBe("exited");
    expect(state.exit?.code).toBe(3);
    expect(state.released).toBe(true);
    expect(cgroupDirsOf(id)).toEqual([]);
    // and the commands agree
    expect((await ok(ctx, ["wait", id])).stdout).toBe("3\n");
    const e = await psEntry(ctx, id);
    expect([e?.State, e?.ExitCode]).toEqual(["exited", 3]);
    expect(e?.Status).toMatch(/^Exited \(3\) /);
    expect((await inspectOne(ctx, id)).State.ExitCode).toBe(3);
  });

  test("--log-opt max-size: ctr.log stays under the cap, one rotated file is kept, logs prints the newest lines in order", async () => {
    const CAP = 16 * 1024;
    const N = 3000;
    const id = await runDetached(
      ctx,
      ["sh", "-c", `i=0; while [ $i -lt ${N} ]; do echo line-$i; i=$((i+1)); done; echo last-err >&2`],
      ["--log-opt", "max-size=16k"],
    );
    expect((await ok(ctx, ["wait", id])).stdout).toBe("0\n");
    const log = join(ctx.stateRoot, id, "ctr.log");
    const maxLine = 64 + "stdout F line-9999".length;
    expect(existsSync(`${log}.1`)).toBe(true);
    expect(statSync(log).size).toBeLessThanOrEqual(CAP + maxLine);
    expect(statSync(`${log}.1`).size).toBeLessThanOrEqual(CAP + maxLine);
    expect(existsSync(`${log}.2`)).toBe(false);
    // every line of the files is a whole CRI line
    for (const f of [`${log}.1`, log]) for (const l of lines(readFileSync(f, "utf8"))) expect(l).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z (stdout|stderr) [FP] /);

    const r = await ok(ctx, ["logs", id]);
    const out = lines(r.stdout);
    expect(r.stderr).toBe("last-err\n");
    // the newest lines, none missing in between, in order, ending with the last one
    expect(out[out.length - 1]).toBe(`line-${N - 1}`);
    const nums = out.map((l) => Number(/^line-(\d+)$/.exec(l)?.[1] ?? Number.NaN));
    const first = nums[0] as number;
    expect(nums).toEqual(Array.from({ length: N - first }, (_, i) => first + i));
    // about two files' worth (the older lines are gone)
    expect(out.length).toBeGreaterThan(CAP / 50);
    expect(out.length).toBeLessThan(N);
    // --tail 5: the last five log lines of both streams. stdout and stderr are two pipes, so where
    // "last-err" falls among the last stdout lines depends on which one the monitor read first
    // (as with docker); what holds is five lines in all, stdout's being its newest, in order.
    const tail = await ok(ctx, ["logs", "--tail", "5", id]);
    const tailOut = lines(tail.stdout);
    const tailErr = lines(tail.stderr);
    expect(tailOut.length + tailErr.length).toBe(5);
    expect(tailErr.every((l) => l === "last-err")).toBe(true);
    expect(tailOut).toEqual(Array.from({ length: tailOut.length }, (_, i) => `line-${N - tailOut.length + i}`));
  });
});

describe("logs -f across rotations", () => {
  /**
   * logs -f must print every line once, in order, when the log rotates while it
   * follows. Deterministic: the container writes a batch (one rotation: 120
   * lines are ~6 KiB, the cap 8 KiB) only when told (SIGUSR1), and it is told
   * while strace holds logs -f right after it looked at ctr.log by name (a stat
   * of ctr.log, held 250 ms): the moment a rotation can come at any time.
   */
  test.skipIf(!Bun.which("strace"))("logs -f prints each line once and in order while ctr.log rotates under it", async () => {
    const BATCHES = 6;
    const PER = 120;
    const script = `k=0; trap 'i=0; while [ $i -lt ${PER} ]; do echo line-$k; k=$((k+1)); i=$((i+1)); done' USR1; trap 'done=1' USR2; echo ready; while [ -z "$done" ]; do sleep 0.05; done`;
    const id = await runDetached(ctx, ["sh", "-c", script], ["--log-opt", "max-size=8k"]);
    const pid = await hostPid(ctx, id);
    const log = join(ctx.stateRoot, id, "ctr.log");
    const trace = join(ctx.tmp, "logs-f-strace.txt");
    const follower = Bun.spawn(
      ["strace", "-f", "-qq", "-o", trace, "-P", log, "-e", "trace=statx,openat", "-e", "inject=statx:delay_exit=250000", NSBOX, "logs", "-f", id],
      { env: ctx.env(), stdout: "pipe", stderr: "pipe" },
    );
    const output = new Response(follower.stdout).text();
    const stats = () =>
      existsSync(trace)
        ? readFileSync(trace, "utf8")
            .split("\n")
            .filter((l) => / statx\(/.test(l)).length
        : 0;
    /** polls every 2 ms (waitUntil's 50 ms would eat most of the 250 ms) */
    const until = async (cond: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!cond() && Date.now() < end) await Bun.sleep(2);
    };
    const inode = () => {
      try {
        return statSync(log).ino;
      } catch {
        return 0; // between the monitor's rename and its new file
      }
    };
    let rotations = 0;
    try {
      for (let b = 0; b < BATCHES; b++) {
        const n0 = stats();
        await until(() => stats() > n0, 5000); // logs -f has just stat'ed ctr.log (and is held)
        const ino = inode();
        process.kill(pid, "SIGUSR1");
        await until(() => inode() !== 0 && inode() !== ino, 1000);
        if (inode() !== ino) rotations++;
        const n1 = stats();
        await until(() => stats() >= n1 + 2, 5000); // logs -f went once round since
      }
    } finally {
      process.kill(pid, "SIGUSR2");
    }
    expect(await follower.exited).toBe(0);
    expect(rotations).toBeGreaterThanOrEqual(BATCHES - 2);
    await ok(ctx, ["rm", id]);
    const got = lines(await output);
    const want = ["ready", ...Array.from({ length: BATCHES * PER }, (_, i) => `line-${i}`)];
    if (got.join("\n") !== want.join("\n")) {
      const seen = new Map<string, number>();
      for (const l of got) seen.set(l, (seen.get(l) ?? 0) + 1);
      const dups = [...seen].filter(([, n]) => n > 1).length;
      const missing = want.filter((l) => !seen.has(l)).length;
      expect(`${got.length} lines, ${dups} printed more than once, ${missing} missing`).toBe(`${want.length} lines, 0 printed more than once, 0 missing`);
    }
    expect(got).toEqual(want);
  });
});

describe("logs into a pipe", () => {
  test("logs | head: the reader closing the pipe early ends logs quietly (no error line, not 125)", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done"]);
    await ok(ctx, ["wait", id]);
    const sh = Bun.spawnSync(["bash", "-c", `${NSBOX} logs ${id} | head -n 1; echo "status \${PIPESTATUS[0]}" >&2`], {
      env: ctx.env(),
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(sh.stdout.toString()).toBe("line-0\n");
    // 0, or killed by SIGPIPE (141) as cat, grep and docker are: not nsbox's error exit with a message
    expect(sh.stderr.toString()).toMatch(/^status (0|141)\n$/);
    await ok(ctx, ["rm", id]);
  });
});

describe("ns --bind", () => {
  test("keeps the network namespace alive after its container is removed; ns unbind removes the mounts and the dir", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"], ["--name", "netholder"]);
    const pid = await hostPid(ctx, id);
    const netIno = statSync(`/proc/${pid}/ns/net`).ino;
    const dir = join(ctx.tmp, "kept-ns");
    const r = await ok(ctx, ["ns", "netholder", "--bind", dir]);
    expect(lines(r.stdout).some((l) => l === `${join(dir, "net")} -> net:[${netIno}]`)).toBe(true);
    expect(readFileSync(join(dir, ".nsbox-ns"), "utf8").trim()).toBe(id);
    expect(ls(dir)).toContain("net");
    expect(ls(dir)).not.toContain("mnt");
    expect(mountsBelow(dir).length).toBeGreaterThanOrEqual(5);

    await ok(ctx, ["rm", "-f", id]);
    expect(pidAlive(pid)).toBe(false);
    // the namespace is still there: same inode, and one can enter it
    expect(statSync(join(dir, "net")).ino).toBe(netIno);
    const inside = Bun.spawnSync(["nsenter", `--net=${join(dir, "net")}`, "ip", "-o", "link"], { stdout: "pipe", stderr: "pipe" });
    expect(inside.exitCode).toBe(0);
    const links = lines(inside.stdout.toString()).map((l) => l.split(":")[1]?.trim());
    expect(links).toEqual(["lo"]);
    const ino = Bun.spawnSync(["nsenter", `--net=${join(dir, "net")}`, "stat", "-L", "-c", "%i", "/proc/self/ns/net"], { stdout: "pipe" });
    expect(ino.stdout.toString().trim()).toBe(String(netIno));

    // unbind: refuses a dir it did not make, then undoes its own
    const stranger = ctx.mkdir("not-ns");
    const refused = await ctx.nsbox(["ns", "unbind", stranger]);
    expect(refused.code).toBe(125);
    expect(isOneNsboxLine(refused.stderr)).toBe(true);
    expect(existsSync(stranger)).toBe(true);
    await ok(ctx, ["ns", "unbind", dir]);
    expect(mountsBelow(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  test("--bind into a non-empty directory is refused and changes nothing", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    const dir = ctx.mkdir("busy-dir");
    await Bun.write(join(dir, "keep"), "x");
    const r = await ctx.nsbox(["ns", id, "--bind", dir]);
    expect(r.code).toBe(125);
    expect(isOneNsboxLine(r.stderr)).toBe(true);
    expect(ls(dir)).toEqual(["keep"]);
    expect(mountsBelow(dir)).toEqual([]);
    await ok(ctx, ["rm", "-f", id]);
  });
});

describe("foreground containers and dead monitors", () => {
  test("a foreground run is listed by ps while it runs and is gone when it exits", async () => {
    const fg = ctx.start(["run", "--net", "none", "--name", "fg", ctx.rootfs, "sh", "-c", "echo ready; sleep 2; exit 5"]);
    await fg.waitFor("ready");
    const e = (await psJson(ctx, false)).find((x) => x.Names === "fg");
    expect(e?.State).toBe("running");
    expect(e?.Pid).toBe(await fg.containerPid());
    const res = await fg.result();
    expect(res.code).toBe(5);
    expect((await psJson(ctx)).find((x) => x.Names === "fg")).toBeUndefined();
    expect(e && leftoversOf(ctx, e.ID)).toEqual([]);
  });

  test("a monitor killed with SIGKILL takes its container down; ps then reports its status (137 if the kernel's was seen, else unknown) and rm cleans up", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    const a = await inspectOne(ctx, id);
    process.kill(a.State.MonitorPid, "SIGKILL");
    expect(await waitUntil(() => !pidAlive(a.State.Pid), 5000)).toBe(true);
    const e = await psEntry(ctx, id);
    // the zombie PID 1 gives its status until the host's init reaps it (see reliability-monitor.test.ts)
    expect([e?.State, e?.ExitCode === 137 || e?.Status.startsWith("Exited (unknown)")]).toEqual(["exited", true]);
    expect(cgroupDirsOf(id)).toEqual([]);
    await ok(ctx, ["rm", id]);
    expect(leftoversOf(ctx, id)).toEqual([]);
  });
});
