/**
 * Rootless tests run as root, create a user for the run (useradd, with its own
 * /etc/subuid and /etc/subgid ranges when asked) and run nsbox as that user
 * (setpriv, with a login-like environment: HOME, USER, PATH and no NSBOX_*).
 * Everything the user owned goes with it in afterAll (its containers, then
 * userdel -r, its ranges and its /tmp state root).
 */
import { afterAll, beforeAll } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { NSBOX, type RunResult } from "./nsbox.ts";

export interface TestUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  /** the subordinate range given to it (ids 1.. inside map there), if any */
  readonly sub?: { start: number; count: number };
  /** a busybox rootfs in its home, built by the user */
  readonly rootfs: string;
  /** its data root (~/.local/share/nsbox) and state root (/tmp/nsbox-UID: no XDG_RUNTIME_DIR) */
  readonly dataRoot: string;
  readonly stateRoot: string;
  /** runs nsbox as the user and waits (stdin empty) */
  nsbox(args: string[], opts?: { env?: Record<string, string>; timeoutMs?: number; tun?: string }): Promise<RunResult>;
  /** runs any command as the user */
  sh(argv: string[]): Promise<RunResult>;
}

const sh = (argv: string[]) => {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
};

async function runAs(
  uid: number,
  gid: number,
  home: string,
  name: string,
  argv: string[],
  env: Record<string, string> = {},
  timeoutMs = 60000,
  tun?: string,
): Promise<RunResult> {
  const asUser = ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--init-groups", "--", ...argv];
  // tun: a mount namespace of the test's own, where that node (mode 0666) stands for /dev/net/tun
  const wrapped = tun ? ["unshare", "-m", "--propagation", "private", "sh", "-c", `mount --bind ${tun} /dev/net/tun && exec "$@"`, "sh", ...asUser] : asUser;
  const p = Bun.spawn(wrapped, {
    cwd: home,
    env: { HOME: home, USER: name, LOGNAME: name, PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill("SIGKILL");
  }, timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, signal: null, stdout, stderr, rawStderr: stderr, timedOut };
}

/** Processes of a uid (from /proc), for the last-resort clean-up of a failed test. */
function pidsOf(uid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (statSync(`/proc/${e}`).uid === uid) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

let serial = 0;

/**
 * A user for this test file: `ranges` gives it 65536 subordinate ids (at a start
 * no other test user shares), otherwise it has none (only its own id is mapped).
 */
export function useTestUser(tag: string, opts: { ranges: boolean }): TestUser {
  const name = `nsbt${tag}${process.pid % 10000}${serial++}`.slice(0, 31);
  const state: { uid: number; gid: number; home: string; bin: string; sub?: { start: number; count: number } } = { uid: -1, gid: -1, home: "", bin: NSBOX };
  const user: TestUser = {
    name,
    get uid() {
      return state.uid;
    },
    get gid() {
      return state.gid;
    },
    get home() {
      return state.home;
    },
    get sub() {
      return state.sub;
    },
    get rootfs() {
      return join(state.home, "rootfs");
    },
    get dataRoot() {
      return join(state.home, ".local/share/nsbox");
    },
    get stateRoot() {
      return `/tmp/nsbox-${state.uid}`;
    },
    nsbox: (args, o = {}) => runAs(state.uid, state.gid, state.home, name, [state.bin, ...args], o.env, o.timeoutMs, o.tun),
    sh: (argv) => runAs(state.uid, state.gid, state.home, name, argv),
  };

  beforeAll(async () => {
    // a copy the user can execute, wherever the checkout is (CI's may be under /root)
    const binDir = mkdtempSync(join(tmpdir(), "nsbox-rootless-bin-"));
    chmodSync(binDir, 0o755);
    state.bin = join(binDir, "nsbox");
    copyFileSync(NSBOX, state.bin);
    chmodSync(state.bin, 0o755);
    // no automatic range from useradd: this test decides
    sh(["useradd", "-m", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name]);
    state.uid = Number(sh(["id", "-u", name]).trim());
    state.gid = Number(sh(["id", "-g", name]).trim());
    state.home = sh(["getent", "passwd", name]).split(":")[5] as string;
    if (opts.ranges) {
      // far above useradd's automatic ranges (100000 + 65536 k), one block per uid
      const start = 400000000 + state.uid * 65536;
      const range = `${start}-${start + 65535}`;
      sh(["usermod", "--add-subuids", range, "--add-subgids", range, name]);
      state.sub = { start, count: 65536 };
    }
    const r = await user.nsbox(["rootfs", "busybox", user.rootfs]);
    if (r.code !== 0) throw new Error(`nsbox rootfs busybox as ${name} failed: ${r.stderr}`);
  });

  afterAll(async () => {
    await removeUser();
    if (state.bin !== NSBOX) rmSync(dirname(state.bin), { recursive: true, force: true });
  });
  const removeUser = async () => {
    if (state.uid < 0) return;
    // its containers first (what they wrote is owned by its subordinate ids)
    const ids = await user.nsbox(["ps", "-aq"]);
    for (const id of ids.stdout.split("\n").filter(Boolean)) await user.nsbox(["rm", "-f", id]);
    for (const pid of pidsOf(state.uid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    if (state.sub) {
      const range = `${state.sub.start}-${state.sub.start + 65535}`;
      Bun.spawnSync(["usermod", "--del-subuids", range, "--del-subgids", range, name]);
    }
    Bun.spawnSync(["userdel", "-r", "-f", name], { stderr: "ignore" });
    rmSync(`/tmp/nsbox-${state.uid}`, { recursive: true, force: true });
    if (existsSync(state.home)) rmSync(state.home, { recursive: true, force: true });
  };
  return user;
}

/** The lines of /etc/subuid naming a user (to check that clean-up removed them). */
export function subuidLines(name: string): string[] {
  return readFileSync("/etc/subuid", "utf8")
    .split("\n")
    .filter((l) => l.startsWith(`${name}:`));
}

/** The uid and CapEff lines of /proc/PID/status, and the user namespace it is in. */
export function procIdentity(pid: number): { uid: number[]; capEff: bigint; userns: string } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const uid = (/^Uid:\s+(.*)$/m.exec(status)?.[1] ?? "").split(/\s+/).map(Number);
  const capEff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? "0"}`);
  return { uid, capEff, userns: readlinkSync(`/proc/${pid}/ns/user`) };
}

/**
 * A tun node open to everyone (/dev/net/tun's usual mode 0666), for tests of
 * pasta and slirp4netns on a host whose /dev/net/tun is closed to users: bound
 * over /dev/net/tun only in the test's own mount namespace (the tun option of nsbox()).
 */
export function openTunNode(dir: string): string {
  const path = join(dir, "tun");
  const r = Bun.spawnSync(["mknod", "-m", "666", path, "c", "10", "200"], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`mknod ${path}: ${r.stderr.toString()}`);
  return path;
}

/** Live processes of a uid whose argv[0] ends with one of these names. */
export function processesOf(uid: number, names: string[]): number[] {
  return pidsOf(uid).filter((pid) => {
    try {
      const argv0 = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
      return names.some((n) => argv0.endsWith(n)) && !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");
    } catch {
      return false;
    }
  });
}
