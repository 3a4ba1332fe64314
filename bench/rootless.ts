/**
 * Section "rootless": `run /bin/true` start to exit as a user without privileges
 * (a user made for the run, with a /etc/subuid and /etc/subgid range: newuidmap
 * and newgidmap map 65536 ids, no cgroup on a host that delegates none), against
 * nsbox as root, bwrap --unshare-all as the same user, and podman rootless (runc,
 * cgroupfs: crun refuses this hybrid host's cgroups) when podman is installed.
 *
 * Every contender goes through the same wrapper (lib.ts), the user's through
 * setpriv with a login-like environment, in one interleaved hyperfine run. The
 * user, its ranges and everything it owned go at the end.
 */
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Arg, type BenchContext, exec, hyperfine, mustExec, mustRunOnce, nsboxArgv, type SectionResult } from "./lib.ts";

export const title = "rootless: `run /bin/true` as a user, start to exit";

const TRUE = ["/bin/true"];

interface User {
  name: string;
  uid: number;
  gid: number;
  home: string;
  bin: string;
  rootfs: string;
}

function makeUser(): User {
  const name = `nsbbench${process.pid % 100000}`;
  mustExec(["useradd", "-m", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name]);
  const uid = Number(mustExec(["id", "-u", name]).trim());
  const gid = Number(mustExec(["id", "-g", name]).trim());
  const start = 400000000 + uid * 65536;
  mustExec(["usermod", "--add-subuids", `${start}-${start + 65535}`, "--add-subgids", `${start}-${start + 65535}`, name]);
  const home = mustExec(["getent", "passwd", name]).split(":")[5] as string;
  // a copy of nsbox the user can execute, wherever the checkout is
  const binDir = mkdtempSync(join(tmpdir(), "nsbox-bench-rootless-"));
  chmodSync(binDir, 0o755);
  const bin = join(binDir, "nsbox");
  return { name, uid, gid, home, bin, rootfs: join(home, "rootfs") };
}

function removeUser(u: User): void {
  // its processes first (podman's pause process holds its user namespace)
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (statSync(`/proc/${e}`).uid === u.uid) process.kill(Number(e), "SIGKILL");
    } catch {
      // gone
    }
  }
  const start = 400000000 + u.uid * 65536;
  exec(["usermod", "--del-subuids", `${start}-${start + 65535}`, "--del-subgids", `${start}-${start + 65535}`, u.name]);
  exec(["userdel", "-r", "-f", u.name]);
  for (const d of [u.home, `/tmp/nsbox-${u.uid}`, `/tmp/containers-user-${u.uid}`, `/tmp/podman-run-${u.uid}`, join(u.bin, "..")])
    rmSync(d, { recursive: true, force: true });
}

/** argv run as the user: setpriv, the user's HOME, no NSBOX_* of the bench's own roots. */
function asUser(u: User, argv: Arg[]): Arg[] {
  return [
    "setpriv",
    `--reuid=${u.uid}`,
    `--regid=${u.gid}`,
    "--init-groups",
    "env",
    "-C",
    u.home,
    "-u",
    "NSBOX_ROOT",
    "-u",
    "NSBOX_STATE",
    "-u",
    "XDG_RUNTIME_DIR",
    `HOME=${u.home}`,
    `USER=${u.name}`,
    ...argv,
  ];
}

export async function run(ctx: BenchContext): Promise<SectionResult> {
  if (!Bun.which("newuidmap") || !Bun.which("setpriv"))
    return { title, tables: [], notes: [], skipped: "newuidmap or setpriv is not installed (apt-get install uidmap util-linux)" };
  const u = makeUser();
  try {
    copyFileSync(ctx.opts.nsbox, u.bin);
    chmodSync(u.bin, 0o755);
    mustRunOnce(ctx, `nsbox rootfs busybox as ${u.name}`, asUser(u, [u.bin, "rootfs", "busybox", u.rootfs]));
    const podman = Bun.which("podman") !== null;
    const cmds: { name: string; argv: Arg[] }[] = [
      { name: "nsbox rootless", argv: asUser(u, [u.bin, "run", "--net", "none", u.rootfs, ...TRUE]) },
      { name: "nsbox as root", argv: nsboxArgv(ctx, ["--net", "none"], TRUE) },
      {
        name: "bwrap as the user",
        argv: asUser(u, ["bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", u.rootfs, "/", "--proc", "/proc", "--dev", "/dev", ...TRUE]),
      },
    ];
    if (podman)
      cmds.push({
        name: "podman rootless",
        argv: asUser(u, ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "run", "--rm", "--network", "none", "--rootfs", u.rootfs, ...TRUE]),
      });
    // every contender once first: a failure is an error, not a number
    for (const c of cmds) mustRunOnce(ctx, c.name, c.argv);
    const s = hyperfine(ctx, cmds);
    const get = (n: string) => s.get(n)?.median ?? Number.NaN;
    const cpu = (n: string) => s.get(n)?.cpu ?? Number.NaN;
    const rl = get("nsbox rootless");
    const notes = [
      `nsbox rootless ${rl.toFixed(1)} ms vs nsbox as root ${get("nsbox as root").toFixed(1)} ms: ratio ${(rl / get("nsbox as root")).toFixed(2)} (CPU ${cpu("nsbox rootless").toFixed(1)} vs ${cpu("nsbox as root").toFixed(1)} ms)`,
      `bwrap --unshare-all as the same user: ${get("bwrap as the user").toFixed(1)} ms (nsbox rootless / bwrap = ${(rl / get("bwrap as the user")).toFixed(2)}); bwrap sets up no overlay, no seccomp, no pid 1 of its own`,
    ];
    if (podman)
      notes.push(
        `podman rootless (runc, cgroupfs, --rootfs): ${get("podman rootless").toFixed(1)} ms (nsbox rootless / podman = ${(rl / get("podman rootless")).toFixed(2)})`,
      );
    else notes.push("podman is not installed: no podman column");
    notes.push("rootless: 0 -> the user, 1..65536 -> its /etc/subuid range through newuidmap/newgidmap; no cgroup (this host delegates none)");
    return {
      title,
      tables: [
        {
          title: "run /bin/true as a user (ms, median; crun and runc do not run rootless here)",
          rows: [
            { metric: "start to exit, wall", values: { nsbox: rl, bwrap: get("bwrap as the user") } },
            { metric: "start to exit, CPU (user+sys)", values: { nsbox: cpu("nsbox rootless"), bwrap: cpu("bwrap as the user") } },
          ],
        },
      ],
      notes,
    };
  } finally {
    removeUser(u);
  }
}
