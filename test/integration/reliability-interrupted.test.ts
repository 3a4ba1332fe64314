/**
 * A detached container's monitor never outlives the container's record (the
 * chaos kill test's round-2 failure): each window where it did is forced here,
 * every time, with NSBOX_TRACE_STOP (nsbox stops itself at a named step of its
 * work, src/trace.ts) instead of a SIGKILL at a random moment.
 *
 * 1. The container died before its monitor blocked SIGCHLD (nsbox killed before
 *    GO: the container gives up at once, while W is still being replaced by the
 *    monitor): no signal came, and the monitor waited forever next to a zombie.
 * 2. rm -f (pod rm -f) of a container whose creation was under way waited for
 *    the creator's lock, then removed the record of the container the creation
 *    had just started: the container and its monitor ran on, with no record.
 * 3. The repair of a creation whose nsbox was killed removed the record and left
 *    the monitor to end by itself, which a stuck monitor (1) never did.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { idsInState, removeAll } from "../helpers/lifecycle.ts";
import { childrenOf, NSBOX, REPO, tryKill, useNsbox, waitUntil } from "../helpers/nsbox.ts";
import { readOr, stateLetter } from "../helpers/proc.ts";

const ctx = useNsbox("rel-interrupted");
ctx.beforeCleanup(() => removeAll(ctx));

/** Live processes of this file's roots: a monitor (its argv names the state root), its cleanup, a container's. */
function ours(): string[] {
  const out: string[] = [];
  for (const e of readdirSync("/proc")) {
    const pid = Number(e);
    if (!(pid > 0) || pid === process.pid) continue;
    const st = stateLetter(pid);
    if (st === "" || st === "Z" || st === "X") continue;
    const cmd = readOr(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
    let root = "";
    try {
      root = readlinkSync(`/proc/${pid}/root`);
    } catch {
      // gone meanwhile
    }
    if (cmd.includes(ctx.tmp) || root.startsWith(ctx.tmp)) out.push(`${pid} (${st}): ${cmd.slice(0, 200)}`);
  }
  return out;
}

/** nsbox ARGS, stopped by itself at the step named point (resolves once it is stopped there). */
async function stoppedAt(args: string[], point: string) {
  const p = Bun.spawn([NSBOX, ...args], { env: ctx.env({ NSBOX_TRACE_STOP: point }), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const out = new Response(p.stdout).text();
  const err = new Response(p.stderr).text();
  const stopped = await waitUntil(() => stateLetter(p.pid) === "T" || p.exitCode !== null, 20000);
  if (stateLetter(p.pid) !== "T") throw new Error(`nsbox ${args.join(" ")} never reached "${point}": exit ${p.exitCode}, ${await err}`);
  return { p, stopped, out, err };
}

const records = () => idsInState(ctx.stateRoot);

// before useNsbox removes the roots (a plain afterAll would run after that)
ctx.beforeCleanup(() => {
  // what a failure left: ended here, so that the clean-up can remove the roots
  for (const l of ours()) tryKill(Number(l.split(" ")[0]));
});

describe("the monitor", () => {
  const shim = join(REPO, "build/nsbox-shim");
  test.skipIf(!Bun.which("perl"))("records the status of a container that died before it started, and runs its cleanup", async () => {
    expect(existsSync(shim)).toBe(true);
    const dir = ctx.mkdir("early-death");
    // perl forks a child that exits at once (status 3), does not reap it, then
    // becomes the monitor: exactly W's state when the container gave up before
    // the monitor's first instruction (fds 3 and 4: the output pipes, closed)
    const script = `
      $^F = 10; use POSIX;
      pipe(my $r1, my $w1); pipe(my $r2, my $w2);
      my $pid = fork(); if ($pid == 0) { POSIX::_exit(3); }
      close $w1; close $w2;
      while (!-e "/proc/$pid/stat" || (split / /, do { local(@ARGV, $/) = "/proc/$pid/stat"; <> })[2] ne "Z") { select(undef, undef, undef, 0.01); }
      POSIX::dup2(fileno($r1), 3); POSIX::dup2(fileno($r2), 4);
      exec { $ARGV[0] } "nsbox-monitor", "$ARGV[1]/exit", "$ARGV[1]/log", "0", "--", "/bin/sh", "-c", "echo cleaned > $ARGV[1]/cleanup";`;
    writeFileSync(join(dir, "m.pl"), script);
    const p = Bun.spawn(["perl", join(dir, "m.pl"), shim, dir], { stdout: "ignore", stderr: "pipe" });
    const ended = await Promise.race([p.exited.then(() => true), Bun.sleep(5000).then(() => false)]);
    if (!ended) p.kill("SIGKILL");
    expect(ended).toBe(true);
    expect(JSON.parse(readOr(join(dir, "exit"))).waitStatus).toBe(3 << 8);
    expect(readOr(join(dir, "cleanup"))).toBe("cleaned\n");
  });
});

describe("rm -f during a creation", () => {
  beforeAll(() => mkdirSync(ctx.stateRoot, { recursive: true }));

  for (const point of ["spawned", "container started"]) {
    test(`rm -f of a container whose run -d waits at "${point}": nothing is left once both return`, async () => {
      const before = new Set(records());
      const run = await stoppedAt(["run", "-d", "--net", "none", ctx.rootfs, "sleep", "600"], point);
      const id = records().find((r) => !before.has(r)) as string;
      expect(id).toBeDefined();
      const rm = ctx.nsbox(["rm", "-f", id]);
      await Bun.sleep(300); // rm meets the creation under way
      run.p.kill("SIGCONT");
      const [rmr, runCode] = await Promise.all([rm, run.p.exited]);
      expect(runCode).toBe(0);
      expect(rmr.code).toBe(0);
      expect(rmr.stderr).toBe("");
      // rm -f returns once what it removed is gone: no record, no monitor, no container
      expect(records()).not.toContain(id);
      expect(ours()).toEqual([]);
    });
  }

  test(`pod rm -f of a pod whose pod create waits at "spawned": nothing is left once both return`, async () => {
    const create = await stoppedAt(["pod", "create", "--net", "none", "--name", "rel-int-pod"], "spawned");
    const rm = ctx.nsbox(["pod", "rm", "-f", "rel-int-pod"]);
    await Bun.sleep(300);
    create.p.kill("SIGCONT");
    const [rmr, code] = await Promise.all([rm, create.p.exited]);
    expect(code).toBe(0);
    expect(rmr.code).toBe(0);
    expect(records()).toEqual([]);
    expect(ours()).toEqual([]);
  });
});

describe("the repair of a killed creation", () => {
  test("ends the monitor with the record, even a monitor that is stuck", async () => {
    const before = new Set(records());
    const run = await stoppedAt(["run", "-d", "--net", "none", ctx.rootfs, "sleep", "600"], "container started");
    const id = records().find((r) => !before.has(r)) as string;
    // W, the monitor: nsbox's child that left its session
    const monitor = childrenOf(run.p.pid).find((c) => readOr(`/proc/${c}/cmdline`).startsWith("nsbox-monitor")) as number;
    expect(monitor).toBeGreaterThan(0);
    tryKill(monitor, "SIGSTOP"); // a monitor that would never end by itself
    run.p.kill("SIGKILL");
    await run.p.exited;
    const ps = await ctx.nsbox(["ps", "-a", "-q", "--no-trunc"]);
    expect(ps.code).toBe(0);
    expect(ps.stdout).not.toContain(id);
    expect(records()).not.toContain(id);
    expect(ours()).toEqual([]);
  });
});
