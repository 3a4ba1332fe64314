/**
 * `nsbox run`: exit codes, signals sent to nsbox, --init, and stdin/stdout/stderr.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cmdlineOf,
  containerCgroups,
  containerVeths,
  isOneNsboxLine,
  lines,
  ls,
  NSBOX,
  pendingRemovals,
  procStatus,
  removalsDone,
  useNsbox,
  waitUntil,
} from "../helpers/nsbox.ts";
import { underReaplessPid1 } from "../helpers/proc.ts";

const ctx = useNsbox("exit");
/**
 * nsbox installs its forwarding handlers a moment after the container starts:
 * the tests of what is forwarded wait this long after "ready" (the race itself
 * has its own test below).
 */
const SETTLE = 300;
/** A live exit keeper (not yet a zombie) of an nsbox that ran with paths below dir: it still holds that nsbox's memory. */
function keeperOf(dir: string): number | undefined {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .find((p) => procStatus(p)?.Name === "nsbox-exit" && cmdlineOf(p).join(" ").includes(dir));
}
const cgroupsAtStart = containerCgroups();
const vethsAtStart = containerVeths();

describe("exit codes", () => {
  test("the command's status: 0, 7, 255", async () => {
    const [a, b, c] = await Promise.all([
      ctx.run([ctx.rootfs, "true"]),
      ctx.run([ctx.rootfs, "sh", "-c", "exit 7"]),
      ctx.run([ctx.rootfs, "sh", "-c", "exit 255"]),
    ]);
    expect([a.code, b.code, c.code]).toEqual([0, 7, 255]);
    for (const r of [a, b, c]) expect(r.stderr).toBe("");
  });

  test("killed by a signal: 128+N (--init: the command kills itself)", async () => {
    const [kill9, usr1, term] = await Promise.all([
      ctx.run(["--init", ctx.rootfs, "sh", "-c", "kill -9 $$"]),
      ctx.run(["--init", ctx.rootfs, "sh", "-c", "kill -USR1 $$"]),
      ctx.run(["--init", ctx.rootfs, "sh", "-c", "kill -TERM $$; sleep 5"]),
    ]);
    expect(kill9.code).toBe(137);
    expect(usr1.code).toBe(138);
    expect(term.code).toBe(143);
  });

  test("killed by a signal: 128+N (PID 1 killed from the host)", async () => {
    const r = ctx.start(["run", ctx.rootfs, "sh", "-c", "echo ready; sleep 30"]);
    await r.waitFor("ready");
    const pid = await r.containerPid();
    process.kill(pid, "SIGKILL");
    const res = await r.result();
    expect(res.code).toBe(137);
    expect(res.signal).toBeNull();
    // nsbox cleaned up after a container that died
    expect(ls(join(ctx.dataRoot, "containers"))).toEqual([]);
  });

  test("PID 1 without --init cannot be killed by its own SIGKILL (the kernel protects it)", async () => {
    const r = await ctx.run([ctx.rootfs, "sh", "-c", "kill -9 $$; echo still-alive"]);
    expect(r.stdout).toBe("still-alive\n");
    expect(r.code).toBe(0);
  });

  test("a child killed by a signal is seen by the shell as 128+N", async () => {
    const r = await ctx.run([ctx.rootfs, "sh", "-c", 'sh -c "kill -9 \\$\\$"; exit $?']);
    expect(r.code).toBe(137);
  });

  test("127 when the command does not exist, and the message names it", async () => {
    const [bare, abs] = await Promise.all([ctx.run([ctx.rootfs, "no-such-command"]), ctx.run([ctx.rootfs, "/no/such/file"])]);
    expect(bare.code).toBe(127);
    expect(isOneNsboxLine(bare.stderr)).toBe(true);
    expect(bare.stderr).toContain("no-such-command");
    expect(abs.code).toBe(127);
    expect(isOneNsboxLine(abs.stderr)).toBe(true);
    expect(abs.stderr).toContain("/no/such/file");
    expect(bare.stdout + abs.stdout).toBe("");
  });

  test("126 when the command is not executable (/etc/passwd, a directory)", async () => {
    const [file, dir] = await Promise.all([ctx.run([ctx.rootfs, "/etc/passwd"]), ctx.run([ctx.rootfs, "/etc"])]);
    expect(file.code).toBe(126);
    expect(isOneNsboxLine(file.stderr)).toBe(true);
    expect(file.stderr).toContain("/etc/passwd");
    // execve's EACCES names the file, not the seccomp profile (which answers EPERM)
    expect(file.stderr).toContain("not an executable file");
    expect(file.stderr).not.toContain("seccomp");
    expect(dir.code).toBe(126);
    expect(isOneNsboxLine(dir.stderr)).toBe(true);
  });

  test("125 for nsbox's own errors", async () => {
    const [flag, rootfs] = await Promise.all([ctx.run(["--bogus", ctx.rootfs, "true"]), ctx.run([join(ctx.tmp, "missing"), "true"])]);
    expect(flag.code).toBe(125);
    expect(isOneNsboxLine(flag.stderr)).toBe(true);
    expect(rootfs.code).toBe(125);
    expect(isOneNsboxLine(rootfs.stderr)).toBe(true);
  });

  test("the container's own exit code 125/126/127 passes through unchanged", async () => {
    const codes = await Promise.all([125, 126, 127].map((n) => ctx.run([ctx.rootfs, "sh", "-c", `exit ${n}`])));
    expect(codes.map((r) => r.code)).toEqual([125, 126, 127]);
    for (const r of codes) expect(r.stderr).toBe("");
  });
});

describe("signals sent to nsbox reach the container", () => {
  const cases: [NodeJS.Signals, number][] = [
    ["SIGTERM", 11],
    ["SIGINT", 12],
    ["SIGHUP", 13],
    ["SIGQUIT", 14],
    ["SIGUSR1", 15],
    ["SIGUSR2", 16],
  ];

  test("each of SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 is forwarded to PID 1", async () => {
    const runs = cases.map(([sig, code]) => {
      const name = sig.replace("SIG", "");
      const script = `trap 'echo got-${name}; exit ${code}' ${name}; echo ready; while :; do sleep 0.1; done`;
      return { sig, code, r: ctx.start(["run", ctx.rootfs, "sh", "-c", script]) };
    });
    await Promise.all(runs.map(({ r }) => r.waitFor("ready")));
    await Bun.sleep(SETTLE);
    for (const { r, sig } of runs) r.kill(sig);
    const results = await Promise.all(runs.map(({ r }) => r.result()));
    results.forEach((res, i) => {
      const { sig, code } = runs[i] as { sig: NodeJS.Signals; code: number };
      expect({ sig, out: res.stdout, code: res.code, signal: res.signal }).toEqual({
        sig,
        out: `ready\ngot-${sig.replace("SIG", "")}\n`,
        code,
        signal: null,
      });
    });
    expect(ls(join(ctx.dataRoot, "containers"))).toEqual([]);
  });

  test("a signal sent as soon as the container prints its first line is forwarded (never kills nsbox)", async () => {
    // Each try: the container prints "ready", the test signals nsbox at once.
    const outcomes: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = ctx.start(["run", ctx.rootfs, "sh", "-c", "trap 'echo got-USR1; exit 21' USR1; echo ready; while :; do sleep 0.05; done"], {
        timeoutMs: 15000,
      });
      await r.waitFor("ready");
      r.kill("SIGUSR1");
      const res = await r.result();
      outcomes.push(res.code === 21 ? "forwarded" : `nsbox code=${res.code} signal=${res.signal}`);
    }
    // repair what a killed nsbox left (its container died with it), for the tests after this one
    await ctx.nsbox(["ps", "-a"]);
    expect(outcomes.filter((o) => o !== "forwarded")).toEqual([]);
  });

  test("a signal PID 1 has no handler for is dropped by the kernel; nsbox keeps waiting", async () => {
    const r = ctx.start(["run", ctx.rootfs, "sh", "-c", "echo ready; sleep 30"]);
    await r.waitFor("ready");
    const pid = await r.containerPid();
    await Bun.sleep(SETTLE);
    r.kill("SIGTERM");
    await Bun.sleep(300);
    // nsbox and the container are both still there
    expect(procStatus(r.pid)).toBeDefined();
    expect(procStatus(pid)).toBeDefined();
    const res = await r.stop();
    expect(res.code).toBe(137);
  });

  test("signals are forwarded again and again (not only the first)", async () => {
    const script = "n=0; trap 'n=$((n+1)); echo usr1-$n' USR1; trap 'echo bye; exit 3' TERM; echo ready; while :; do sleep 0.05; done";
    const r = ctx.start(["run", ctx.rootfs, "sh", "-c", script]);
    await r.waitFor("ready");
    await Bun.sleep(SETTLE);
    for (let i = 1; i <= 3; i++) {
      r.kill("SIGUSR1");
      await r.waitFor(`usr1-${i}`);
    }
    r.kill("SIGTERM");
    const res = await r.result();
    expect(res.stdout).toBe("ready\nusr1-1\nusr1-2\nusr1-3\nbye\n");
    expect(res.code).toBe(3);
  });
});

describe("--init", () => {
  test("PID 1 is nsbox-init and the command is PID 2", async () => {
    const out = lines((await ctx.run(["--init", ctx.rootfs, "sh", "-c", "echo $$; cat /proc/1/comm; cat /proc/$$/status | grep PPid"])).stdout);
    expect(out[0]).toBe("2");
    expect(out[1]).toBe("nsbox-init");
    expect(out[2]?.replace(/\s+/g, " ")).toBe("PPid: 1");
  });

  test("without --init the command is PID 1", async () => {
    const out = lines((await ctx.run([ctx.rootfs, "sh", "-c", "echo $$; cat /proc/1/comm; true"])).stdout);
    expect(out).toEqual(["1", "sh"]);
  });

  test("SIGTERM to nsbox makes a plain `sleep 60` exit with 143 (init forwards it)", async () => {
    const t0 = Date.now();
    const r = ctx.start(["run", "--init", ctx.rootfs, "sleep", "60"]);
    const pid1 = await r.containerPid();
    // wait until sleep itself runs (PID 2 inside)
    await waitUntil(() => procStatus(pid1) && readFileSync(`/proc/${pid1}/task/${pid1}/children`, "utf8").trim() !== "", 5000);
    await Bun.sleep(SETTLE);
    r.kill("SIGTERM");
    const res = await r.result();
    expect(res.code).toBe(143);
    expect(Date.now() - t0).toBeLessThan(20000);
  });

  test("orphans are reaped: no zombie is left", async () => {
    // A grandchild that outlives its parent is re-parented to PID 1 and exits
    // there: init must wait for it.
    const script =
      "(sleep 0.5 & echo $! > /tmp/orphan); sleep 0.1; o=$(cat /tmp/orphan); echo $o $(cut -d' ' -f4 /proc/$o/stat); sleep 1.2; " +
      'for s in /proc/[0-9]*/stat; do read -r line < $s && echo "$line"; done';
    const r = await ctx.run(["--init", ctx.rootfs, "sh", "-c", script]);
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    const [orphan, parent] = (out[0] ?? "").split(" ");
    // the grandchild was re-parented to PID 1, nsbox-init (not to the shell)
    expect(parent).toBe("1");
    expect(Number(orphan)).toBeGreaterThan(2);
    const states = out.slice(1).map((l) => {
      const after = l.slice(l.lastIndexOf(")") + 2).split(" ");
      return { pid: l.split(" ")[0], state: after[0] };
    });
    expect(states.length).toBeGreaterThan(0);
    expect(states.filter((s) => s.state === "Z")).toEqual([]);
    expect(states.map((s) => s.pid)).not.toContain(orphan);
  });

  test("the command's exit status propagates (0, 5, signal)", async () => {
    const rs = await Promise.all([
      ctx.run(["--init", ctx.rootfs, "true"]),
      ctx.run(["--init", ctx.rootfs, "sh", "-c", "exit 5"]),
      ctx.run(["--init", ctx.rootfs, "sh", "-c", "kill -KILL $$"]),
    ]);
    expect(rs.map((r) => r.code)).toEqual([0, 5, 137]);
  });

  test("SIGUSR1 to nsbox reaches the command through init", async () => {
    const r = ctx.start(["run", "--init", ctx.rootfs, "sh", "-c", "trap 'echo got-usr1; exit 9' USR1; echo ready; while :; do sleep 0.1; done"]);
    await r.waitFor("ready");
    await Bun.sleep(SETTLE);
    r.kill("SIGUSR1");
    const res = await r.result();
    expect(res.stdout).toBe("ready\ngot-usr1\n");
    expect(res.code).toBe(9);
  });
});

describe("stdin, stdout, stderr", () => {
  test("-i: stdin is passed in (echo hi | nsbox run -i ROOTFS cat)", async () => {
    const r = await ctx.run(["-i", ctx.rootfs, "cat"], { input: "hi\n" });
    expect(r.stdout).toBe("hi\n");
    expect(r.code).toBe(0);
  });

  test("-i: a few megabytes of binary data go through unchanged", async () => {
    const data = new Uint8Array(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, Math.min(i + 65536, data.length)));
    const want = new Bun.CryptoHasher("sha256").update(data).digest("hex");
    const r = await ctx.run(["-i", ctx.rootfs, "sha256sum"], { input: data });
    expect(r.stdout.split(" ")[0]).toBe(want);
  });

  test("without -i stdin is /dev/null: cat prints nothing and exits 0, even with a pipe kept open", async () => {
    const r = ctx.start(["run", ctx.rootfs, "cat"]);
    r.write("this must not reach the container\n");
    // the pipe stays open: a cat reading it would block until the timeout
    const res = await Promise.race([r.result(), Bun.sleep(10000).then(() => undefined)]);
    r.closeStdin();
    expect(res).toBeDefined();
    expect(res?.stdout).toBe("");
    expect(res?.code).toBe(0);
  });

  test("without -i, stdin inside is the null device", async () => {
    const r = await ctx.run([ctx.rootfs, "sh", "-c", "stat -L -c '%t,%T %F' /proc/self/fd/0"], { input: "x" });
    expect(r.stdout).toBe("1,3 character special file\n");
  });

  test("stdout is a pipe: all of the output arrives, in order", async () => {
    // a real pipe (Bun's "pipe" is a socket): nsbox run ... | cat
    const piped = Bun.spawnSync(["sh", "-c", '"$0" run "$1" sh -c "readlink /proc/self/fd/1; seq 1 200000" | cat', NSBOX, ctx.rootfs], {
      env: ctx.env(),
      stdout: "pipe",
      timeout: 20000,
    });
    const out = lines(piped.stdout.toString());
    expect(out[0]).toMatch(/^pipe:\[\d+\]$/);
    expect(out.length).toBe(200001);
    expect(out[200000]).toBe("200000");
    expect(out.slice(1, 4)).toEqual(["1", "2", "3"]);
  });

  test("nsbox run ROOTFS cat /etc/passwd | wc -l", async () => {
    const r = await ctx.run([ctx.rootfs, "cat", "/etc/passwd"]);
    expect(r.stdout).toBe(readFileSync(join(ctx.rootfs, "etc/passwd"), "utf8"));
    const piped = Bun.spawnSync(["sh", "-c", '"$0" run "$1" cat /etc/passwd | wc -l', NSBOX, ctx.rootfs], {
      env: ctx.env(),
      stdout: "pipe",
    });
    expect(piped.stdout.toString().trim()).toBe(String(lines(readFileSync(join(ctx.rootfs, "etc/passwd"), "utf8")).length));
  });

  test("stderr passes through, separately from stdout", async () => {
    const r = await ctx.run([ctx.rootfs, "sh", "-c", "echo out; echo err >&2; echo out2; echo err2 >&2; exit 4"]);
    expect(r.stdout).toBe("out\nout2\n");
    expect(r.stderr).toBe("err\nerr2\n");
    expect(r.code).toBe(4);
  });

  test("stdout closed early by the reader (head) does not hang nsbox", async () => {
    const piped = Bun.spawnSync(["sh", "-c", '"$0" run "$1" seq 1 10000000 | head -3', NSBOX, ctx.rootfs], {
      env: ctx.env(),
      stdout: "pipe",
      timeout: 20000,
    });
    expect(piped.stdout.toString()).toBe("1\n2\n3\n");
    expect(piped.exitCode).toBe(0);
  });

  test("nothing is left behind by these runs", async () => {
    // the runs through a shell above did not wait for their exit keepers' removals
    expect(await removalsDone(ctx.env())).toEqual([]);
    expect(ls(join(ctx.dataRoot, "containers"))).toEqual([]);
    expect(ls(ctx.stateRoot).filter((e) => /^[0-9a-f]{64}$/.test(e))).toEqual([]);
    expect(containerCgroups()).toEqual(cgroupsAtStart);
    expect(containerVeths()).toEqual(vethsAtStart);
  });
});

describe("nsbox's own exit (src/native/exit.ts)", () => {
  /**
   * run (and exec) leave their memory to a child that shares it and dies with
   * them ("nsbox-exit"): the caller gets the status without waiting for ~30 MB to
   * be freed. Seen from a PID 1 that reaps nothing but nsbox (a shell's wait would
   * reap the orphan), that child is left a zombie: it existed, and died on its own.
   */
  test("the exit keeper: the status and output at once, the keeper dead soon after nsbox", () => {
    const r = underReaplessPid1([NSBOX, "run", "--net", "none", ctx.rootfs, "sh", "-c", "echo hi; exit 3"], ctx.env());
    expect(r).toEqual({ code: 3, out: "hi\n", err: "", left: ["nsbox-exit Z"] });
  });

  /**
   * A foreground run's layers and state dir are renamed to .rm-* (no nsbox command
   * sees the container any more) and removed by the keeper after nsbox's exit. A
   * keeper killed before it is done (systemd ending a unit's cgroup) leaves them to
   * the next command that reconciles.
   */
  test("the keeper removes the container's layers after the exit; what a killed keeper left, the next ps removes", async () => {
    // 4000 directories in the layer: their removal takes the keeper long enough to be seen (~0.2 ms an rmdir here)
    const script = "cd /tmp && mkdir $(seq 1 4000)";
    const r = await ctx.run(["--net", "none", ctx.rootfs, "sh", "-c", script], { waitRemovals: false, timeoutMs: 60000 });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const ids = (dir: string) => ls(dir).filter((e) => /^[0-9a-f]{64}$/.test(e));
    // gone for every reader at the exit
    expect(ids(ctx.stateRoot)).toEqual([]);
    expect(ids(join(ctx.dataRoot, "containers"))).toEqual([]);
    // the keeper still holds the memory of its nsbox (run, or the cleanup its shim ran) while it removes
    const keeper = keeperOf(ctx.tmp);
    expect(keeper).toBeDefined();
    process.kill(keeper as number, "SIGKILL");
    await waitUntil(() => !existsSync(`/proc/${keeper}/cmdline`) || readFileSync(`/proc/${keeper}/cmdline`).length === 0, 5000);
    const left = pendingRemovals(ctx.env());
    expect(left.length).toBeGreaterThan(0);
    expect((await ctx.nsbox(["ps", "-a"])).code).toBe(0);
    expect(pendingRemovals(ctx.env())).toEqual([]);
    expect(ls(join(ctx.dataRoot, "containers"))).toEqual([]);
  }, 30000);

  test("the keeper follows no symlink, goes on past what it cannot remove, and leaves that to the next ps", async () => {
    // links to a host directory (their targets are plain text to the keeper), and a
    // chain of directories deeper than it descends (64) beside a wide one
    const victim = ctx.mkdir("victim");
    writeFileSync(join(victim, "keep"), "");
    const script = `ln -s ${victim} /tmp/v; ln -s ${victim}/ /tmp/v2; d=/tmp/deep; for i in $(seq 70); do d=$d/x; done; mkdir -p $d; mkdir /tmp/wide && cd /tmp/wide && mkdir $(seq 1 500) && touch f$(seq -s " f" 1 500)`;
    const r = await ctx.run(["--net", "none", ctx.rootfs, "sh", "-c", script], { waitRemovals: false });
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    await waitUntil(() => keeperOf(ctx.tmp) === undefined, 10000);
    expect(ls(victim)).toEqual(["keep"]);
    const left = pendingRemovals(ctx.env());
    expect(left.length).toBe(1);
    // only the deep chain is left: 70 x's below upper/tmp/deep
    const tree = Bun.spawnSync(["find", left[0] as string, "-mindepth", "1"])
      .stdout.toString()
      .trim()
      .split("\n");
    expect(tree.length).toBe(3 + 70);
    expect(tree.every((p) => /\/upper(\/tmp(\/deep(\/x)*)?)?$/.test(p))).toBe(true);
    expect((await ctx.nsbox(["ps", "-a"])).code).toBe(0);
    expect(pendingRemovals(ctx.env())).toEqual([]);
  }, 30000);
});
