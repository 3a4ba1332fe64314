/**
 * Detached containers, one round trip per command: run -d, ps, logs, exec,
 * stop, kill, rm, wait, inspect, stats, ns.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { cgroupDirsOf, hostPid, inspectOne, leftoversOf, ok, pidAlive, ppidOf, psEntry, psJson, removeAll, runDetached } from "../helpers/lifecycle.ts";
import { childrenOf, isOneNsboxLine, lines, NSBOX, useNsbox, waitUntil } from "../helpers/nsbox.ts";

const ctx = useNsbox("lifecycle-basics");
ctx.beforeCleanup(() => removeAll(ctx));

const NS_TYPES = ["pid", "mnt", "net", "uts", "ipc", "cgroup"] as const;
const UP = /^Up (Less than a second|1 second|\d+ seconds)$/;

/** Waits until `logs ID` shows text (the container got that far). */
async function logged(id: string, text: string, timeoutMs = 10000): Promise<void> {
  const seen = await waitUntil(async () => (await ctx.nsbox(["logs", id])).stdout.includes(text), timeoutMs);
  if (!seen) throw new Error(`container ${id.slice(0, 12)} never logged ${JSON.stringify(text)}`);
}

const nsLink = (pid: number | string, type: string) => readlinkSync(`/proc/${pid}/ns/${type}`);

describe("run -d and ps", () => {
  test("ps -f: status, exited, name, id filters as docker's (same key ORed, keys ANDed); a bad filter is one clear error", async () => {
    const web = await runDetached(ctx, ["sleep", "1000"], ["--name", "flt-web"]);
    const job0 = await runDetached(ctx, ["true"], ["--name", "flt-job0"]);
    const job3 = await runDetached(ctx, ["sh", "-c", "exit 3"], ["--name", "flt-job3"]);
    await ok(ctx, ["wait", job0, job3]);
    const ids = async (...args: string[]) => lines((await ok(ctx, ["ps", "-q", "--no-trunc", ...args])).stdout).sort();
    const mine = (xs: string[]) => xs.filter((x) => [web, job0, job3].includes(x));
    // a status or an exit code looks at every container, without -a
    expect(mine(await ids("-f", "status=exited"))).toEqual([job0, job3].sort());
    expect(mine(await ids("--filter", "exited=3"))).toEqual([job3]);
    expect(mine(await ids("-f", "status=running"))).toEqual([web]);
    // name and id keep ps's default (running only) unless -a
    expect(mine(await ids("-f", "name=flt-job"))).toEqual([]);
    expect(mine(await ids("-a", "-f", "name=flt-job"))).toEqual([job0, job3].sort());
    expect(mine(await ids("-f", `id=${web.slice(0, 8)}`))).toEqual([web]);
    expect(mine(await ids("-f", "status=running", "-f", "status=exited", "-f", "name=flt-"))).toEqual([web, job0, job3].sort());
    expect(mine(await ids("-f", "status=exited", "-f", "name=flt-web"))).toEqual([]);
    const json = lines((await ok(ctx, ["ps", "-f", "exited=0", "--format", "json"])).stdout).map((l) => JSON.parse(l) as { ID: string });
    expect(mine(json.map((j) => j.ID))).toEqual([job0]);
    for (const bad of ["color=red", "status=dead", "exited=x", "=x", "name"]) {
      const r = await ctx.nsbox(["ps", "-f", bad]);
      expect([bad, r.code, r.stdout, isOneNsboxLine(r.stderr)]).toEqual([bad, 125, "", true]);
      expect(r.stderr).toContain(`"${bad}"`);
    }
    await ok(ctx, ["rm", "-f", web, job0, job3]);
  });

  test("run -d prints the id; ps shows it running with pid, name and an Up status; its parent is the small monitor, not nsbox", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"], ["--name", "web"]);
    const running = await psJson(ctx, false);
    const e = running.find((x) => x.ID === id);
    expect(e).toBeDefined();
    expect(e?.State).toBe("running");
    expect(e?.Names).toBe("web");
    expect(e?.Command).toBe("sleep 1000");
    expect(e?.ExitCode).toBeNull();
    expect(e?.Status).toMatch(UP);
    const pid = e?.Pid ?? 0;
    expect(pid).toBeGreaterThan(0);
    expect(pidAlive(pid)).toBe(true);
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toBe("sleep\u00001000\u0000");

    // the table and -q
    const table = (await ok(ctx, ["ps"])).stdout;
    expect(lines(table)[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PID\s+PORTS\s+NAMES$/);
    const row = lines(table).find((l) => l.startsWith(id.slice(0, 12)));
    expect(row).toBeDefined();
    expect(row).toContain(" Up ");
    expect(row).toContain(` ${pid} `);
    expect(row?.endsWith(" web")).toBe(true);
    expect(lines((await ok(ctx, ["ps", "-q"])).stdout)).toContain(id.slice(0, 12));
    expect(lines((await ok(ctx, ["ps", "-q", "--no-trunc"])).stdout)).toContain(id);

    // the parent of PID 1 is the monitor shim (exec'd from a memfd), not a Bun process
    const monitor = (await inspectOne(ctx, id)).State.MonitorPid;
    expect(monitor).toBeGreaterThan(0);
    expect(ppidOf(pid)).toBe(monitor);
    expect(readFileSync(`/proc/${monitor}/comm`, "utf8").trim()).toBe("nsbox-monitor");
    expect(readlinkSync(`/proc/${monitor}/exe`)).not.toBe(NSBOX);
    expect(readFileSync(`/proc/${monitor}/status`, "utf8")).toMatch(/VmRSS:\s+\d+ kB/);
    const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${monitor}/status`, "utf8"))?.[1]);
    expect(rssKb).toBeLessThan(2048);

    // seconds later the status counts them
    await Bun.sleep(2100);
    expect((await psEntry(ctx, id))?.Status).toMatch(/^Up [23] seconds$/);
  });

  test("ps hides exited containers; ps -a shows them as Exited (N) ... ago with their exit code", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "exit 4"]);
    expect((await ok(ctx, ["wait", id])).stdout).toBe("4\n");
    expect((await psJson(ctx, false)).map((e) => e.ID)).not.toContain(id);
    const e = await psEntry(ctx, id);
    expect(e?.State).toBe("exited");
    expect(e?.ExitCode).toBe(4);
    expect(e?.Pid).toBe(0);
    expect(e?.Status).toMatch(/^Exited \(4\) (Less than a second|\d+ seconds?) ago$/);
  });
});

describe("logs", () => {
  test("stdout and stderr lines, each on its own stream, in order; a last line without newline too", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; printf partial"]);
    await ok(ctx, ["wait", id]);
    const r = await ok(ctx, ["logs", id]);
    expect(r.stdout).toBe("out1\nout2\npartial\n");
    expect(r.stderr).toBe("err1\nerr2\n");
  });

  test("--tail N prints the last N lines", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; done"]);
    await ok(ctx, ["wait", id]);
    expect((await ok(ctx, ["logs", "--tail", "3", id])).stdout).toBe("8\n9\n10\n");
    expect((await ok(ctx, ["logs", "--tail", "0", id])).stdout).toBe("");
    expect((await ok(ctx, ["logs", "--tail", "100", id])).stdout).toBe("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
    const bad = await ctx.nsbox(["logs", "--tail", "x", id]);
    expect(bad.code).toBe(125);
    expect(isOneNsboxLine(bad.stderr)).toBe(true);
  });

  test("-t prefixes each line with its RFC 3339 time (nanoseconds), in order and within the container's life", async () => {
    const before = Date.now();
    const id = await runDetached(ctx, ["sh", "-c", "echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c"]);
    await ok(ctx, ["wait", id]);
    const after = Date.now();
    const r = await ok(ctx, ["logs", "-t", id]);
    const out = lines(r.stdout).map((l) => /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)$/.exec(l));
    const err = lines(r.stderr).map((l) => /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)$/.exec(l));
    expect(out.map((m) => m?.[2])).toEqual(["a", "c"]);
    expect(err.map((m) => m?.[2])).toEqual(["b"]);
    const t = [out[0], err[0], out[1]].map((m) => Date.parse(m?.[1] ?? ""));
    for (const x of t) {
      expect(x).toBeGreaterThanOrEqual(before - 1000);
      expect(x).toBeLessThanOrEqual(after + 1000);
    }
    expect(t[1] as number).toBeGreaterThan(t[0] as number);
    expect(t[2] as number).toBeGreaterThan(t[1] as number);
  });

  test("-f prints what comes and returns once the container has exited", async () => {
    // taken before the container starts: its sleeps alone last 2 s, so -f cannot return sooner
    // however slow `run -d` is on a loaded machine
    const started = Date.now();
    const id = await runDetached(ctx, ["sh", "-c", "echo first; sleep 1.5; echo second >&2; sleep 0.5; echo third; exit 3"]);
    const f = ctx.start(["logs", "-f", id]);
    await f.waitFor("first\n", 5000);
    await Bun.sleep(300);
    // still following, the rest not there yet
    expect(f.proc.exitCode).toBeNull();
    expect(f.stdout).toBe("first\n");
    const r = await f.result();
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("first\nthird\n");
    expect(r.stderr).toBe("second\n");
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect((await ok(ctx, ["wait", id])).stdout).toBe("3\n");
  });
});

describe("exec", () => {
  test("output and exit codes as with run: 0, N, 128+signal, 127 for a missing command", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    const hi = await ctx.nsbox(["exec", id, "echo", "hi"]);
    expect([hi.code, hi.stdout, hi.stderr]).toEqual([0, "hi\n", ""]);
    const err = await ctx.nsbox(["exec", id, "sh", "-c", "echo to-stderr >&2; exit 5"]);
    expect([err.code, err.stdout, err.stderr]).toEqual([5, "", "to-stderr\n"]);
    expect((await ctx.nsbox(["exec", id, "sh", "-c", "kill -9 $$"])).code).toBe(137);
    const missing = await ctx.nsbox(["exec", id, "no-such-command"]);
    expect(missing.code).toBe(127);
    expect(isOneNsboxLine(missing.stderr)).toBe(true);
    expect(missing.stderr).toContain("no-such-command");
    // the container is unaffected
    expect((await psEntry(ctx, id))?.State).toBe("running");
  });

  test("-e, -w and -u; the container's own environment is kept", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"], ["-e", "FROM_RUN=yes"]);
    const r = await ok(ctx, ["exec", "-e", "FOO=bar baz", "-w", "/tmp", "-u", "1000:1001", id, "sh", "-c", 'echo "$FOO"; echo $FROM_RUN; pwd; id -u; id -g']);
    expect(lines(r.stdout)).toEqual(["bar baz", "yes", "/tmp", "1000", "1001"]);
    const byName = await ok(ctx, ["exec", "-u", "nobody", id, "id", "-u"]);
    expect(byName.stdout).toBe("65534\n");
    const dflt = await ok(ctx, ["exec", id, "sh", "-c", "id -u; pwd"]);
    expect(lines(dflt.stdout)).toEqual(["0", "/"]);
  });

  test("-i passes piped stdin; without -i stdin is empty", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    const r = await ok(ctx, ["exec", "-i", id, "sh", "-c", "wc -l; echo done"], "a\nb\nc\n");
    expect(lines(r.stdout).map((l) => l.trim())).toEqual(["3", "done"]);
    const cat = await ok(ctx, ["exec", "-i", id, "cat"], "round trip\n");
    expect(cat.stdout).toBe("round trip\n");
    const closed = await ok(ctx, ["exec", id, "cat"], "not passed\n");
    expect(closed.stdout).toBe("");
  });

  test("lands in the container's pid, mnt, net, uts, ipc and cgroup namespaces and in its cgroup", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    const pid = await hostPid(ctx, id);
    const script = `for n in ${NS_TYPES.join(" ")}; do echo $n $(readlink /proc/self/ns/$n) $(readlink /proc/1/ns/$n); done; echo ==; cat /proc/self/cgroup; echo ==; cat /proc/1/cgroup`;
    const r = await ok(ctx, ["exec", id, "sh", "-c", script]);
    const [nsPart, selfCg, initCg] = r.stdout.split("==\n") as [string, string, string];
    for (const l of lines(nsPart)) {
      const [type, inExec, inInit] = l.split(" ") as [string, string, string];
      expect(inExec).toBe(inInit);
      expect(inExec).toBe(nsLink(pid, type));
      // and not the host's
      expect(inExec).not.toBe(nsLink("self", type));
    }
    expect(lines(nsPart).map((l) => l.split(" ")[0])).toEqual([...NS_TYPES]);
    expect(selfCg).toBe(initCg);

    // from the host: a long-running exec'd process, seen from outside
    const ex = ctx.start(["exec", id, "sh", "-c", "echo ready; sleep 30"]);
    await ex.waitFor("ready");
    const execPid = await ex.containerPid();
    for (const type of NS_TYPES) expect(nsLink(execPid, type)).toBe(nsLink(pid, type));
    const cg = readFileSync(`/proc/${execPid}/cgroup`, "utf8");
    expect(cg).toBe(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
    expect(cg).toContain(`nsbox-${id}`);
    ex.kill("SIGTERM");
    const res = await ex.result();
    expect(res.code).toBe(143);
  });

  test("into an exited container or an unknown one: one clear error line, exit 125", async () => {
    const id = await runDetached(ctx, ["true"], ["--name", "gone-soon"]);
    await ok(ctx, ["wait", id]);
    for (const ref of [id, "gone-soon"]) {
      const r = await ctx.nsbox(["exec", ref, "echo", "hi"]);
      expect(r.code).toBe(125);
      expect(r.stdout).toBe("");
      expect(isOneNsboxLine(r.stderr)).toBe(true);
      expect(r.stderr).toContain("not running");
    }
    const unknown = await ctx.nsbox(["exec", "no-such-container", "echo", "hi"]);
    expect(unknown.code).toBe(125);
    expect(isOneNsboxLine(unknown.stderr)).toBe(true);
    expect(unknown.stderr).toContain("no such container");
  });
});

describe("stop, kill, rm, wait", () => {
  test("stop: a container that traps SIGTERM exits with its own code, at once", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done"]);
    await logged(id, "ready");
    const t0 = Date.now();
    const r = await ok(ctx, ["stop", "-t", "10", id.slice(0, 12)]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.stdout).toBe(`${id.slice(0, 12)}\n`);
    expect((await ok(ctx, ["wait", id])).stdout).toBe("42\n");
    const e = await psEntry(ctx, id);
    expect([e?.State, e?.ExitCode]).toEqual(["exited", 42]);
    expect(e?.Status).toMatch(/^Exited \(42\) /);
    expect((await ok(ctx, ["logs", id])).stdout).toBe("ready\ngot-term\n");
  });

  test("stop -t: a container that ignores SIGTERM gets SIGKILL after the timeout (137)", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"]);
    await logged(id, "ready");
    const pid = await hostPid(ctx, id);
    const t0 = Date.now();
    await ok(ctx, ["stop", "-t", "1", id]);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(took).toBeLessThan(6000);
    expect(pidAlive(pid)).toBe(false);
    expect((await ok(ctx, ["wait", id])).stdout).toBe("137\n");
    expect((await psEntry(ctx, id))?.Status).toMatch(/^Exited \(137\) /);
  });

  test("kill -s SIG delivers that signal; kill defaults to KILL; a stopped container cannot be killed", async () => {
    const trapper = await runDetached(ctx, ["sh", "-c", "trap 'echo usr1; exit 9' USR1; echo ready; while :; do sleep 0.1; done"]);
    const plain = await runDetached(ctx, ["sleep", "1000"]);
    await logged(trapper, "ready");
    expect((await ok(ctx, ["kill", "-s", "USR1", trapper])).stdout).toBe(`${trapper}\n`);
    expect((await ok(ctx, ["wait", trapper])).stdout).toBe("9\n");
    expect((await ok(ctx, ["logs", trapper])).stdout).toBe("ready\nusr1\n");
    await ok(ctx, ["kill", plain]);
    expect((await ok(ctx, ["wait", plain])).stdout).toBe("137\n");
    const again = await ctx.nsbox(["kill", plain]);
    expect(again.code).toBe(125);
    expect(isOneNsboxLine(again.stderr)).toBe(true);
    const badSig = await ctx.nsbox(["kill", "-s", "NOPE", plain]);
    expect(badSig.code).toBe(125);
    expect(isOneNsboxLine(badSig.stderr)).toBe(true);
  });

  test("rm refuses a running container; rm -f kills and removes it; rm of an exited one removes everything", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"], ["--name", "to-remove"]);
    const pid = await hostPid(ctx, id);
    expect(cgroupDirsOf(id).length).toBeGreaterThan(0);
    const refused = await ctx.nsbox(["rm", id]);
    expect(refused.code).toBe(125);
    expect(isOneNsboxLine(refused.stderr)).toBe(true);
    expect(refused.stderr).toContain("running");
    expect((await psEntry(ctx, id))?.State).toBe("running");
    expect((await ok(ctx, ["rm", "-f", "to-remove"])).stdout).toBe("to-remove\n");
    expect(pidAlive(pid)).toBe(false);
    expect(await psEntry(ctx, id)).toBeUndefined();
    expect(existsSync(join(ctx.stateRoot, "names", "to-remove"))).toBe(false);
    expect(await waitUntil(() => leftoversOf(ctx, id).length === 0, 5000)).toBe(true);

    const exited = await runDetached(ctx, ["true"]);
    await ok(ctx, ["wait", exited]);
    expect((await psEntry(ctx, exited))?.State).toBe("exited");
    await ok(ctx, ["rm", exited]);
    expect(await psEntry(ctx, exited)).toBeUndefined();
    expect(leftoversOf(ctx, exited)).toEqual([]);

    const unknown = await ctx.nsbox(["rm", "no-such-container"]);
    expect(unknown.code).toBe(125);
    expect(isOneNsboxLine(unknown.stderr)).toBe(true);
  });

  test("wait blocks until exit and prints each container's code, in the order given", async () => {
    // t0 is taken before the slow container starts: it cannot exit before t0 + 1 s, so a wait that
    // returned early shows up below whatever the time `run -d` takes on a loaded machine
    const t0 = Date.now();
    const slow = await runDetached(ctx, ["sh", "-c", "sleep 1; exit 6"]);
    const fast = await runDetached(ctx, ["sh", "-c", "exit 3"]);
    const r = await ok(ctx, ["wait", slow, fast]);
    // wait returns once the monitor has given back what they held, not merely once they exited
    expect([...cgroupDirsOf(slow), ...cgroupDirsOf(fast)]).toEqual([]);
    expect(r.stdout).toBe("6\n3\n");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect((await psEntry(ctx, slow))?.State).toBe("exited");
  });
});

describe("inspect, stats, ns", () => {
  test("inspect -f: docker's {{.Field}} and {{json .Field}} templates, one line per container; a missing field or other action is one clear error", async () => {
    const a = await runDetached(ctx, ["sleep", "1000"], ["--name", "tpl-a"]);
    const b = await runDetached(ctx, ["sleep", "1000"], ["--name", "tpl-b"]);
    const pids = [(await inspectOne(ctx, a)).State.Pid, (await inspectOne(ctx, b)).State.Pid];
    const r = await ok(ctx, ["inspect", "-f", "{{.Name}} pid={{.State.Pid}} running={{json .State.Running}}", "tpl-a", "tpl-b"]);
    expect(r.stdout).toBe(`tpl-a pid=${pids[0]} running=true\ntpl-b pid=${pids[1]} running=true\n`);
    // the PID is what nsenter -t needs; objects print as JSON
    expect((await ok(ctx, ["inspect", "--format", "{{.State.Pid}}", a])).stdout).toBe(`${pids[0]}\n`);
    expect(JSON.parse((await ok(ctx, ["inspect", "-f", "{{.Cgroup}}", a])).stdout)).toEqual((await inspectOne(ctx, a)).Cgroup);
    expect(JSON.parse((await ok(ctx, ["inspect", "-f", "{{.}}", a])).stdout).Id).toBe(a);
    expect(JSON.parse((await ok(ctx, ["inspect", "--format", "json", a])).stdout)[0].Id).toBe(a);

    const missing = await ctx.nsbox(["inspect", "-f", "{{.State.Nope}}", a]);
    expect([missing.code, missing.stdout]).toEqual([125, ""]);
    expect(isOneNsboxLine(missing.stderr)).toBe(true);
    expect(missing.stderr).toContain('.State has no field "Nope"');
    expect(missing.stderr).toContain("Pid");
    const range = await ctx.nsbox(["inspect", "-f", "{{range .Mounts}}x{{end}}", a]);
    expect([range.code, range.stdout, isOneNsboxLine(range.stderr)]).toEqual([125, "", true]);
    expect(range.stderr).toContain("{{range .Mounts}}");
    await ok(ctx, ["rm", "-f", a, b]);
  });

  test("inspect: state, pid, monitor, namespaces and cgroup of a running container, then of the exited one", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "sleep 1000"], ["--name", "insp"]);
    const a = await inspectOne(ctx, "insp");
    expect(a.Id).toBe(id);
    expect(a.Name).toBe("insp");
    expect([a.Path, a.Args]).toEqual(["sh", ["-c", "sleep 1000"]]);
    expect(a.State.Status).toBe("running");
    expect(a.State.Running).toBe(true);
    expect(a.State.ExitCode).toBeNull();
    expect(a.State.FinishedAt).toBeNull();
    expect(a.State.OOMKilled).toBe(false);
    expect(Number.isNaN(Date.parse(a.State.StartedAt ?? ""))).toBe(false);
    expect(a.Detached).toBe(true);
    expect(a.AutoRemove).toBe(false);
    const pid = a.State.Pid;
    expect(pid).toBe((await psEntry(ctx, id))?.Pid as number);
    expect(ppidOf(pid)).toBe(a.State.MonitorPid);
    const byType = new Map(a.Namespaces.map((n) => [n.Type, n]));
    for (const t of NS_TYPES) {
      expect(byType.get(t)?.Inode).toBe(statSync(`/proc/${pid}/ns/${t}`).ino);
      expect(byType.get(t)?.Path).toBe(`/proc/${pid}/ns/${t}`);
    }
    expect(a.Cgroup).not.toBeNull();
    const paths = Object.values(a.Cgroup?.Paths ?? {});
    expect(paths.length).toBeGreaterThan(0);
    for (const p of paths) {
      expect(p).toContain(`nsbox-${id}`);
      expect(readFileSync(join(p, "cgroup.procs"), "utf8").split("\n")).toContain(String(pid));
    }
    expect(a.LogPath).toBe(join(ctx.stateRoot, id, "ctr.log"));
    expect(a.Spec.mounts.some((m) => m.destination === "/proc")).toBe(true);

    // the same container by id prefix
    expect((await inspectOne(ctx, id.slice(0, 10))).Id).toBe(id);

    await ok(ctx, ["stop", "-t", "0", id]);
    const b = await inspectOne(ctx, id);
    expect(b.State.Status).toBe("exited");
    expect(b.State.Running).toBe(false);
    expect(b.State.Pid).toBe(0);
    expect(b.State.ExitCode).toBe(137);
    expect(b.State.OOMKilled).toBe(false);
    expect(Date.parse(b.State.FinishedAt ?? "")).toBeGreaterThanOrEqual(Date.parse(b.State.StartedAt ?? ""));
    expect(b.Namespaces).toEqual([]);

    const unknown = await ctx.nsbox(["inspect", "no-such-container"]);
    expect(unknown.code).toBe(125);
    expect(isOneNsboxLine(unknown.stderr)).toBe(true);
  });

  test("stats --no-stream: memory usage above 0 and the container's processes counted", async () => {
    const id = await runDetached(ctx, ["sh", "-c", "sleep 1000 & echo ready; wait"], ["--name", "busy"]);
    await logged(id, "ready");
    const r = await ok(ctx, ["stats", "--no-stream", "--format", "json", id]);
    const rows = lines(r.stdout).map(
      (l) => JSON.parse(l) as { id: string; name: string; memoryUsage: number | null; pids: number | null; cpuPercent: number | null },
    );
    expect(rows.length).toBe(1);
    expect(rows[0]?.id).toBe(id);
    expect(rows[0]?.name).toBe("busy");
    expect(rows[0]?.memoryUsage ?? 0).toBeGreaterThan(0);
    expect(rows[0]?.pids ?? 0).toBeGreaterThanOrEqual(2); // sh and sleep
    expect(rows[0]?.cpuPercent).not.toBeNull();
    const table = await ok(ctx, ["stats", "--no-stream", "busy"]);
    expect(lines(table.stdout)[0]).toMatch(/^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS$/);
    expect(lines(table.stdout)[1]).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+busy\\s+`));
    // every running container by default
    const all = await ok(ctx, ["stats", "--no-stream", "--format", "json"]);
    expect(lines(all.stdout).map((l) => (JSON.parse(l) as { id: string }).id)).toContain(id);

    await ok(ctx, ["stop", "-t", "0", id]);
    const stopped = await ctx.nsbox(["stats", "--no-stream", id]);
    expect(stopped.code).toBe(125);
    expect(isOneNsboxLine(stopped.stderr)).toBe(true);
  });

  test("ns lists the container's namespaces (type, inode, pid, sharing) as the kernel shows them", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"], ["--name", "nsview"]);
    const pid = await hostPid(ctx, id);
    const table = lines((await ok(ctx, ["ns", "nsview"])).stdout);
    expect(table[0]).toMatch(/^TYPE\s+INODE\s+PID\s+SHARED WITH$/);
    const cols = (l: string) => /^(\S+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(l)?.slice(1) ?? [];
    const rows = new Map(table.slice(1).map((l) => [cols(l)[0] as string, cols(l)]));
    for (const t of NS_TYPES) {
      const row = rows.get(t);
      expect(row?.[1]).toBe(String(statSync(`/proc/${pid}/ns/${t}`).ino));
      expect(row?.[2]).toBe(String(pid));
      expect(row?.[3]).toBe("-");
    }
    // not unshared (nsbox has no user namespace by default): shared with the host
    expect(rows.get("user")?.[3]?.split(", ")[0]).toBe("host");
    const json = JSON.parse((await ok(ctx, ["ns", id, "--format", "json"])).stdout) as { type: string; inode: number; pid: number; host: boolean }[];
    for (const t of NS_TYPES) {
      const n = json.find((x) => x.type === t);
      expect(n?.inode).toBe(statSync(`/proc/${pid}/ns/${t}`).ino);
      expect(n?.host).toBe(false);
    }

    // a second container joining its network shows up as sharing it
    const peer = await ctx.nsbox(["run", "-d", "--name", "peer", "--net", "container:nsview", ctx.rootfs, "sleep", "1000"]);
    expect(peer.code).toBe(0);
    const withPeer = lines((await ok(ctx, ["ns", "nsview"])).stdout);
    expect(cols(withPeer.find((l) => l.startsWith("net ")) ?? "")[3]).toBe("peer");
    expect(cols(withPeer.find((l) => l.startsWith("pid ")) ?? "")[3]).toBe("-");
    await ok(ctx, ["rm", "-f", "peer"]);

    await ok(ctx, ["stop", "-t", "0", id]);
    const stopped = await ctx.nsbox(["ns", id]);
    expect(stopped.code).toBe(125);
    expect(isOneNsboxLine(stopped.stderr)).toBe(true);
    expect(childrenOf(pid)).toEqual([]);
  });
});
