/**
 * Rootless cgroups. Without a delegated subtree (this project's hybrid hosts, or
 * a v2 cgroup the user does not own), a container without limits runs with no
 * cgroup and one with limits is refused in one line naming what to delegate,
 * with no cgroup made. On a pure cgroup v2 host (the test VM, test/vm/run.sh) a
 * subtree is delegated by hand as systemd does (the directory, cgroup.procs,
 * cgroup.subtree_control and cgroup.threads chowned to the user), and limits
 * are enforced there, under the user's own cgroup, and removed with the container.
 *
 * The user is a bare uid without a passwd entry (the VM has no useradd) and no
 * /etc/subuid range: only its own id is mapped, which is all cgroups need.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectCgroups } from "../../src/cgroup/detect.ts";
import { NSBOX, type RunResult } from "../helpers/nsbox.ts";

const UID = 54000 + (process.pid % 1000);
const host = detectCgroups();
const V2 = host.mode === "v2" && host.v2Mount === "/sys/fs/cgroup";
const CG = "/sys/fs/cgroup";

let dir = "";
let bin = "";
let home = "";
let rootfs = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "nsbox-rootless-cg-"));
  chmodSync(dir, 0o755);
  bin = join(dir, "nsbox");
  copyFileSync(NSBOX, bin);
  chmodSync(bin, 0o755);
  home = join(dir, "home");
  mkdirSync(home, { mode: 0o700 });
  chownSync(home, UID, UID);
  rootfs = join(home, "rootfs");
});

beforeAll(async () => {
  const r = await asUser(["rootfs", "busybox", rootfs]);
  if (r.code !== 0) throw new Error(`rootfs busybox as ${UID}: ${r.stderr}`);
});

afterAll(async () => {
  if (home) {
    const ids = await asUser(["ps", "-aq"]);
    for (const id of ids.stdout.split("\n").filter(Boolean)) await asUser(["rm", "-f", id]);
  }
  rmSync(`/tmp/nsbox-${UID}`, { recursive: true, force: true });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** nsbox as the bare uid; with `cgroup`, started in that cgroup (moved there as root, before dropping to the user). */
async function asUser(args: string[], cgroup?: string): Promise<RunResult> {
  // util-linux's setpriv (the VM's PATH finds busybox's first, which cannot change ids)
  const drop = [existsSync("/usr/bin/setpriv") ? "/usr/bin/setpriv" : "setpriv", `--reuid=${UID}`, `--regid=${UID}`, "--clear-groups", "--", bin, ...args];
  const argv = cgroup ? ["sh", "-c", `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`, "sh", ...drop] : drop;
  const p = Bun.spawn(argv, {
    cwd: home,
    env: { HOME: home, PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), 120000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, signal: null, stdout, stderr, rawStderr: stderr, timedOut: false };
}

/** cgroup dirs named nsbox-* that belong to the uid, anywhere under the cgroup mounts. */
function userCgroups(): string[] {
  const r = Bun.spawnSync(["find", CG, "-maxdepth", "5", "-type", "d", "-name", "nsbox-*", "-user", String(UID)], { stdout: "pipe", stderr: "ignore" });
  return r.stdout.toString().split("\n").filter(Boolean);
}

const mustAsUser = async (args: string[], cgroup?: string) => {
  const r = await asUser(args, cgroup);
  if (r.code !== 0) throw new Error(`nsbox ${args.join(" ")} as uid ${UID}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
};

describe("no delegated cgroup", () => {
  test.if(!V2)("limits are refused in one line that says what to delegate; nothing is made", async () => {
    for (const flags of [
      ["-m", "64m"],
      ["--pids-limit", "10"],
      ["--cpus", "0.5"],
    ]) {
      const r = await asUser(["run", "--net", "none", ...flags, rootfs, "true"]);
      expect(r.code).toBe(125);
      expect(r.stderr).toMatch(/^nsbox: --[a-z-/]+.*: a rootless container gets limits only in a cgroup delegated to you, and .*delegate/);
      expect(r.stderr.split("\n").length).toBe(2);
    }
    expect(userCgroups()).toEqual([]);
  });

  test.if(!V2)("a container without limits runs with no cgroup at all", async () => {
    const id = (await mustAsUser(["run", "-d", "--net", "none", rootfs, "sleep", "30"])).trim();
    const info = JSON.parse(await mustAsUser(["inspect", id]))[0];
    expect(info.Cgroup).toBeNull();
    expect(readFileSync(`/proc/${info.State.Pid}/cgroup`, "utf8")).toBe(readFileSync(`/proc/${info.State.MonitorPid}/cgroup`, "utf8"));
    expect(userCgroups()).toEqual([]);
    await mustAsUser(["rm", "-f", id]);
  });
});

describe.if(V2)("a cgroup v2 subtree delegated to the user", () => {
  const deleg = `${CG}/nsbox-rootless-${process.pid}`;
  const other = `${CG}/nsbox-rootless-nodeleg-${process.pid}`;
  beforeAll(() => {
    // as systemd delegates: the directory and the files a delegatee writes
    mkdirSync(deleg);
    for (const f of ["", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"]) chownSync(join(deleg, f), UID, UID);
    mkdirSync(join(deleg, "shell"));
    for (const f of ["", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"]) chownSync(join(deleg, "shell", f), UID, UID);
    mkdirSync(join(other, "shell"), { recursive: true });
  });
  afterAll(() => {
    for (const d of [join(deleg, "shell"), deleg, join(other, "shell"), other]) {
      try {
        rmdirSync(d);
      } catch {
        // busy or gone: the VM goes anyway
      }
    }
  });

  test("limits are enforced in the user's own subtree, and go with the container", async () => {
    const r = await asUser(
      ["run", "--net", "none", "-m", "64m", "--pids-limit", "33", rootfs, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max"],
      join(deleg, "shell"),
    );
    // (the first run of this user also says once that only its own id is mapped)
    expect(r.stderr.replace(/^nsbox: rootless without subordinate ids.*\n/, "")).toBe("");
    expect(r.stdout).toBe("67108864\n33\n");
    const id = (await mustAsUser(["run", "-d", "--net", "none", "-m", "64m", rootfs, "sleep", "60"], join(deleg, "shell"))).trim();
    const info = JSON.parse(await mustAsUser(["inspect", id]))[0];
    const leaf = info.Cgroup.Paths.unified as string;
    expect(leaf).toBe(`${deleg}/nsbox.slice/nsbox-${id}`);
    expect(readFileSync(join(leaf, "memory.max"), "utf8")).toBe("67108864\n");
    expect(readFileSync(join(leaf, "cgroup.procs"), "utf8")).toContain(String(info.State.Pid));
    await mustAsUser(["rm", "-f", id], join(deleg, "shell"));
    expect(existsSync(leaf)).toBe(false);
    expect(existsSync(`${deleg}/nsbox.slice`)).toBe(false);
  });

  test("a v2 cgroup that is not the user's: limits refused, naming it; no limits: no cgroup", async () => {
    const r = await asUser(["run", "--net", "none", "-m", "64m", rootfs, "true"], join(other, "shell"));
    expect(r.code).toBe(125);
    expect(r.stderr).toContain(`the cgroup ${other} is not delegated to you`);
    const ok = await asUser(["run", "--net", "none", rootfs, "true"], join(other, "shell"));
    expect(ok.code).toBe(0);
    expect(readdirSync(other).filter((n) => n.startsWith("nsbox"))).toEqual([]);
  });
});
