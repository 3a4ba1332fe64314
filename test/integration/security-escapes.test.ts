/**
 * Known container escapes, each tried from inside a default container (where it
 * must fail) and, where that is harmless to the host, from inside a
 * --privileged one (where it must work: so each test can fail, and shows what
 * the default takes away). The attacks are made by test/probes/escape.c, whose
 * calls are harmless even where they are not refused (see its header).
 *
 * The host is never the target of an experiment: everything runs inside
 * containers; what the tests read on the host is files and process state.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ok, removeAll, runDetached } from "../helpers/lifecycle.ts";
import { lines, ls, NSBOX, sha256File, useNsbox, waitUntil } from "../helpers/nsbox.ts";
import { probeInto, removeProbes, runInside } from "../helpers/probes.ts";

const ctx = useNsbox("sec-escapes");
ctx.beforeCleanup(() => removeAll(ctx));
ctx.beforeCleanup(removeProbes);

/** the escape probe's path inside the container */
const E = "/probes/escape";
beforeAll(() => {
  probeInto(ctx.rootfs, ["escape"]);
});

const PRIV = ["--privileged"];

/** What `ldd BIN` prints; through the dynamic loader's --list where there is no ldd (the cgroup v2 VM). */
function sharedLibraries(bin: string): string {
  const ldd = Bun.which("ldd");
  if (ldd) return Bun.spawnSync([ldd, bin], { stdout: "pipe" }).stdout.toString();
  const loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"].find((p) => existsSync(p));
  return loader ? Bun.spawnSync([loader, "--list", bin], { stdout: "pipe" }).stdout.toString() : "";
}

/** `run --net none FLAGS ROOTFS sh -c SCRIPT`: stdout, which must come with exit 0. */
const inside = (script: string, flags: string[] = []) => runInside(ctx, script, flags);

/** The probe's "NAME: RESULT" lines as an object. */
function results(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of lines(stdout)) {
    const i = l.indexOf(": ");
    if (i > 0) out[l.slice(0, i)] = l.slice(i + 2);
  }
  return out;
}

/** Errors that mean "this file cannot be written here". */
const REFUSED_WRITE = /^(EROFS|EACCES|EPERM)$/;

/** major:minor of a device number as Linux encodes it (new_encode_dev). */
const major = (dev: number) => (dev >> 8) & 0xfff;
const minor = (dev: number) => (dev & 0xff) | ((dev >> 12) & 0xfff00);

describe("writes to the kernel's global knobs", () => {
  test("/proc/sys/kernel/core_pattern (a pipe there runs a program as host root): refused; --privileged writes the same value back", async () => {
    const before = readFileSync("/proc/sys/kernel/core_pattern", "utf8");
    const dflt = results(await inside(`${E} write-back /proc/sys/kernel/core_pattern`));
    expect(dflt["/proc/sys/kernel/core_pattern"]).toMatch(REFUSED_WRITE);
    const priv = results(await inside(`${E} write-back /proc/sys/kernel/core_pattern`, PRIV));
    expect(priv["/proc/sys/kernel/core_pattern"]).toBe("ok");
    expect(readFileSync("/proc/sys/kernel/core_pattern", "utf8")).toBe(before);
  });

  // Kernels without CONFIG_MAGIC_SYSRQ (this host's) have no /proc/sysrq-trigger.
  test.skipIf(!existsSync("/proc/sysrq-trigger"))('/proc/sysrq-trigger ("h": help in the kernel log only): refused; --privileged writes it', async () => {
    expect(results(await inside(`${E} sysrq`)).sysrq).toMatch(REFUSED_WRITE);
    expect(results(await inside(`${E} sysrq`, PRIV)).sysrq).toBe("ok");
  });
});

describe("mounts and devices", () => {
  test("mount -t tmpfs: EPERM; --privileged mounts and unmounts (in the container's mount namespace)", async () => {
    expect(await inside(`${E} mount /mnt`)).toBe("mount=EPERM\n");
    expect(await inside(`${E} mount /mnt`, PRIV)).toBe("mount=ok umount=ok\n");
  });

  test("mknod of the host's root block device and of a loop device is allowed (as docker), opening them is not; --privileged opens the loop device", async () => {
    const dev = statSync("/").dev;
    const root = `${major(dev)} ${minor(dev)}`;
    const out = await inside(`${E} mknod-open /dev/nsbox-root ${root}; ${E} mknod-open /dev/nsbox-loop 7 0`);
    expect(lines(out)).toEqual(["mknod=ok open=EPERM", "mknod=ok open=EPERM"]);
    // Only the loop device as the positive check: on this host even the host's
    // root cannot open the mounted root device (it answers EPERM), and an
    // unbound loop device is harmless to open read-only.
    if (existsSync("/dev/loop0") && major(Number(statSync("/dev/loop0").rdev)) === 7)
      expect(await inside(`${E} mknod-open /dev/nsbox-loop 7 0`, PRIV)).toBe("mknod=ok open=ok\n");
  });

  test("CVE-2022-0492: a cgroup v1 hierarchy cannot be mounted, nor a release_agent below /sys/fs/cgroup opened for writing", async () => {
    // controllers this kernel has (rdma, the CVE's, may be missing)
    const controllers = readFileSync("/proc/cgroups", "utf8")
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split("\t")[0] as string);
    const tryThem = ["rdma", "pids", "memory", "freezer"].filter((c) => controllers.includes(c));
    const out = await inside(
      `${tryThem.map((c) => `${E} cgroup-v1 /mnt ${c}`).join("; ")}; ${E} release-agents $(find /sys/fs/cgroup -name release_agent 2>/dev/null) /sys/fs/cgroup/release_agent`,
    );
    const [mounts, agents] = [lines(out).slice(0, tryThem.length), lines(out).slice(tryThem.length)];
    expect(mounts).toEqual(tryThem.map(() => "mount=EPERM"));
    for (const [path, r] of Object.entries(results(agents.join("\n"))))
      expect([path, r]).toEqual([path, expect.stringMatching(/^(EROFS|EACCES|EPERM|ENOENT)$/)]);
    // --privileged mounts the (existing) pids hierarchy: the probe never writes its release_agent.
    // On a pure cgroup v2 host every controller is v2's (hierarchy 0 in /proc/cgroups),
    // so a v1 mount of one is EINVAL even there: a named v1 hierarchy is what can be mounted.
    const pidsHierarchy = readFileSync("/proc/cgroups", "utf8").match(/^pids\t(\d+)/m)?.[1];
    // A new hierarchy can only be made from the initial cgroup namespace, hence
    // --cgroupns host there (the mount goes with the container's mount namespace).
    const v1 = pidsHierarchy !== undefined && pidsHierarchy !== "0";
    const what = v1 ? "pids" : "none,name=nsbox-escape-test";
    expect(await inside(`${E} cgroup-v1 /mnt ${what}`, v1 ? PRIV : [...PRIV, "--cgroupns", "host"])).toMatch(/^mount=ok /);
  });
});

describe("syscalls docker's profile refuses", () => {
  // Each probe call passes arguments the kernel rejects AFTER its permission
  // checks (see escape.c), so under --privileged it answers something other than
  // EPERM without doing anything; by default seccomp answers EPERM first.
  const calls = [
    "keyctl",
    "add_key",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "init_module",
    "finit_module",
    "clock_settime",
    "swapon",
    "reboot",
    "setns",
    "vsock",
  ];

  test(`${calls.join(", ")}: EPERM; --privileged reaches the kernel`, async () => {
    const dflt = results(await inside(calls.map((c) => `${E} ${c}`).join("; ")));
    expect(dflt).toEqual(Object.fromEntries(calls.map((c) => [c, "EPERM"])));
    const priv = results(await inside(calls.map((c) => `${E} ${c}`).join("; "), PRIV));
    for (const c of calls) expect([c, priv[c]]).toEqual([c, expect.not.stringMatching(/^EPERM$/)]);
  });

  test("clone3 answers ENOSYS (libcs fall back to clone), as docker's profile", async () => {
    expect(await inside(`${E} clone3`)).toBe("clone3: ENOSYS\n");
    expect(await inside(`${E} clone3`, PRIV)).not.toBe("clone3: ENOSYS\n");
  });

  test("personality: READ_IMPLIES_EXEC (0x0400000) refused; docker's allowed values work", async () => {
    const allowed = ["0x0", "0x0008", "0x20000", "0x20008", "0xffffffff"];
    const out = results(await inside(["0x0400000", ...allowed].map((p) => `echo -n "${p} "; ${E} personality ${p}`).join("; ")));
    expect(out).toEqual({ "0x0400000 personality": "EPERM", ...Object.fromEntries(allowed.map((p) => [`${p} personality`, "ok"])) });
    expect(results(await inside(`${E} personality 0x0400000`, PRIV)).personality).toBe("ok");
  });

  test("open_by_handle_at (the shocker escape: the host's root from a bind-mounted file's handle): EPERM; --privileged lists the host's /", async () => {
    // name_to_handle_at itself is allowed, as in docker's profile
    expect(await inside(`${E} shocker /etc/hosts`)).toBe("name_to_handle_at=ok open_by_handle_at=EPERM\n");
    const priv = await inside(`${E} shocker /etc/hosts`, PRIV);
    expect(priv).toMatch(/^name_to_handle_at=ok open_by_handle_at=ok entries=/);
    // /etc/hosts is bound from the state root: inode 2 is the root of its filesystem
    if (statSync(ctx.stateRoot).dev === statSync("/").dev) {
      const entries = (priv.trim().split("entries=")[1] ?? "").split(",").filter((e) => e && e !== "." && e !== "..");
      expect(entries.sort()).toEqual(readdirSync("/").sort());
    }
  });

  test("unshare(CLONE_NEWUSER) then mount, and clone(CLONE_NEWUSER): refused; --privileged does both", async () => {
    expect(await inside(`${E} unshare-mount; ${E} clone-newuser`)).toBe("unshare=EPERM\nclone_newuser: EPERM\n");
    expect(await inside(`${E} unshare-mount; ${E} clone-newuser`, PRIV)).toBe("unshare=ok mount=ok\nclone_newuser: ok\n");
  });

  test("ptrace: a process of the container can be traced (docker allows it on kernels >= 4.8); one outside cannot even be named", async () => {
    // process.pid is this test's pid on the host: no such pid in the container's namespace
    expect(await inside(`${E} ptrace ${process.pid}`)).toBe("child=ok other=ESRCH\n");
    expect(await inside(`${E} ptrace ${process.pid}`, PRIV)).toBe("child=ok other=ESRCH\n");
  });
});

describe("CVE-2019-5736: the container cannot reach the nsbox binary through /proc/PID/exe", () => {
  /**
   * A copy of nsbox runs these containers, so that the attack (if nsbox let it
   * through) could only ever reach the copy, never the dist/nsbox other tests use;
   * and a rootfs where nsbox's binary can run (its loader and libraries) with the
   * public PoC's trick: a script whose interpreter is /proc/self/exe makes the
   * runtime's helper, if it still runs the runtime's binary when it execs, exec
   * that binary inside the container, where it becomes dumpable.
   */
  function setUp(name: string) {
    const bin = join(ctx.tmp, `nsbox-copy-${name}`);
    copyFileSync(NSBOX, bin);
    const st = statSync(bin);
    const rootfs = join(ctx.tmp, `rootfs-${name}`);
    const made = Bun.spawnSync([NSBOX, "rootfs", "busybox", rootfs], { env: ctx.env(), stderr: "pipe" });
    if (made.exitCode !== 0) throw new Error(`nsbox rootfs busybox: ${made.stderr.toString()}`);
    probeInto(rootfs, ["escape"]);
    const ldd = sharedLibraries(NSBOX);
    for (const lib of ldd.match(/\/\S+/g) ?? []) {
      mkdirSync(join(rootfs, dirname(lib)), { recursive: true });
      copyFileSync(lib, join(rootfs, lib));
    }
    writeFileSync(join(rootfs, "probes/evil-sh"), "#!/proc/self/exe\n", { mode: 0o755 });
    return { bin, sum: sha256File(bin), rootfs, watch: [E, "exe-watch", "100", `${st.dev}:${st.ino}`] };
  }

  /** Waits for the watcher (container id) to finish (dist/nsbox waits: the copy must stay idle) and checks what it got. */
  async function expectNoWrite(id: string, bin: string, sum: string, minSeen: number): Promise<void> {
    // The watcher goes on until told (or 100 s): its watch must cover every process started.
    // Told from the host, through its root: an exec'd `touch` could be killed as the watcher,
    // PID 1, ends on seeing the file (its pid namespace goes with it), and fail the test.
    const pid = (await ok(ctx, ["inspect", "-f", "{{.State.Pid}}", id])).stdout.trim();
    writeFileSync(`/proc/${pid}/root/tmp/exe-watch-stop`, "");
    await ok(ctx, ["wait", id]);
    const out = (await ok(ctx, ["logs", id])).stdout;
    const m = /seen=(\d+) exe_opened=(\d+) write_ok=(\d+)/.exec(out);
    expect(m).not.toBeNull();
    // it saw the processes nsbox started
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(minSeen);
    expect({ out, write_ok: Number(m?.[3]), sha256: sha256File(bin) }).toEqual({ out, write_ok: 0, sha256: sum });
  }

  const watching = async (id: string) => expect(await waitUntil(async () => (await ctx.nsbox(["logs", id])).stdout.includes("watching"))).toBe(true);

  test("while exec runs 30 times (some through #!/proc/self/exe), a process watching every new /proc/PID/exe never opens nsbox for writing; the binary stays byte-identical", async () => {
    const { bin, sum, rootfs, watch } = setUp("exec");
    // The watcher is the container's own process (its parent is the monitor shim,
    // so no nsbox process keeps the binary busy while it tries), as in the PoC.
    const run = await ctx.nsbox(["run", "-d", "--net", "none", rootfs, ...watch], { bin });
    const id = run.stdout.trim();
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    try {
      await watching(id);
      const cmds = [["/probes/evil-sh"], ["/proc/self/exe", "--version"], ["true"]];
      for (let i = 0; i < 30; i++) await ctx.nsbox(["exec", id, ...(cmds[i % cmds.length] as string[])], { bin });
      await expectNoWrite(id, bin, sum, 20);
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  }, 300000);

  test("in a pod sharing its pid namespace, a member watching never opens nsbox for writing while other members start (run --pod, 10 times)", async () => {
    const { bin, sum, rootfs, watch } = setUp("pod");
    const pod = (await ok(ctx, ["pod", "create", "--net", "none", "--share", "net,ipc,uts,pid", "--name", "sec-5736"])).stdout.trim();
    try {
      const run = await ctx.nsbox(["run", "-d", "--pod", pod, rootfs, ...watch], { bin });
      const id = run.stdout.trim();
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
      await watching(id);
      for (let i = 0; i < 10; i++) await ctx.nsbox(["run", "--pod", pod, rootfs, i % 2 ? "/proc/self/exe" : "/probes/evil-sh"], { bin });
      await expectNoWrite(id, bin, sum, 8);
    } finally {
      await ctx.nsbox(["pod", "rm", "-f", pod]);
    }
  }, 300000);
});

describe("CVE-2024-21626: no fd of the host reaches the container", () => {
  /** "N target" lines of the fds probe, without the targets */
  const fdNumbers = (out: string) => lines(out).map((l) => l.split(" ")[0]);

  test("the container's process and each exec'd one hold only fds 0, 1, 2 (PID 1 too)", async () => {
    expect(fdNumbers(await inside(`${E} fds`))).toEqual(["0", "1", "2"]);
    const id = await runDetached(ctx, ["sleep", "1000"]);
    try {
      const self = await ok(ctx, ["exec", id, E, "fds"]);
      expect(fdNumbers(self.stdout)).toEqual(["0", "1", "2"]);
      const pid1 = await ok(ctx, ["exec", id, E, "fds", "1"]);
      expect(fdNumbers(pid1.stdout)).toEqual(["0", "1", "2"]);
      const interactive = await ok(ctx, ["exec", "-i", id, E, "fds"]);
      expect(fdNumbers(interactive.stdout)).toEqual(["0", "1", "2"]);
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  });

  test("-w /proc/self/fd/N (N = 3..20), on run and on exec, reaches nothing of the host", async () => {
    const marker = `host-marker-${process.pid}`;
    for (const d of [ctx.tmp, ctx.dataRoot, ctx.stateRoot]) if (existsSync(d)) writeFileSync(join(d, marker), "host\n");
    // names that would show that the working directory is on the host: the marker,
    // a cgroup directory (runc's leaked fd), the host's / (entries the rootfs lacks)
    const rootfsEntries = ls(ctx.rootfs);
    const hostOnly = readdirSync("/").filter((e) => !rootfsEntries.includes(e));
    const forbidden = [marker, "cgroup.procs", ...hostOnly];
    const leaks: string[] = [];
    const check = (what: string, r: { code: number; stdout: string }) => {
      if (r.code !== 0) return;
      const seen = lines(r.stdout).filter((e) => forbidden.includes(e));
      if (seen.length) leaks.push(`${what}: ${seen.join(",")} (${JSON.stringify(r.stdout)})`);
    };
    const id = await runDetached(ctx, ["sleep", "1000"]);
    try {
      for (let n = 3; n <= 20; n++) {
        const dir = `/proc/self/fd/${n}`;
        check(`run -w ${dir}`, await ctx.run(["--net", "none", "-w", dir, ctx.rootfs, "ls", "-a"]));
        check(`exec -w ${dir}`, await ctx.nsbox(["exec", "-w", dir, id, "ls", "-a"]));
      }
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
    expect(leaks).toEqual([]);
  }, 120000);
});

describe("CVE-2017-5226: no TIOCSTI into the caller's terminal without -t", () => {
  const legacy = (() => {
    try {
      return readFileSync("/proc/sys/dev/tty/legacy_tiocsti", "utf8").trim();
    } catch {
      return "absent"; // before Linux 6.2: TIOCSTI always allowed to the tty's session or CAP_SYS_ADMIN
    }
  })();

  /** Runs the tiocsti probe in a tmux pane (a private server) and returns what the pane shows. */
  async function inPane(flags: string[], marker: string): Promise<string> {
    const socket = `nsbox-test-sec-${process.pid}-${flags.length}`;
    const tmux = (args: string[]) => Bun.spawnSync(["tmux", "-L", socket, ...args], { stdout: "pipe", stderr: "pipe", env: ctx.env() });
    const cmd = `${NSBOX} run --net none ${flags.join(" ")} ${ctx.rootfs} ${E} tiocsti ${marker}; echo nsbox-exited; sleep 60`;
    try {
      const r = tmux(["-f", "/dev/null", "new-session", "-d", "-x", "150", "-y", "30", "-s", "main", cmd]);
      if (r.exitCode !== 0) throw new Error(`tmux new-session failed: ${r.stderr.toString()}`);
      const screen = () => tmux(["capture-pane", "-p", "-J", "-t", "main", "-S", "-100"]).stdout.toString();
      const done = await waitUntil(() => screen().includes("nsbox-exited"), 20000);
      if (!done) throw new Error(`the probe never finished; screen:\n${screen()}`);
      await Bun.sleep(200);
      return screen();
    } finally {
      tmux(["kill-server"]);
    }
  }

  test("the probe's ioctls on fds 0-2 and /dev/tty fail and the marker never reaches the pane; --privileged can inject (CAP_SYS_ADMIN)", async () => {
    // With dev.tty.legacy_tiocsti = 0 (Linux >= 6.2) the kernel refuses TIOCSTI to
    // everyone without CAP_SYS_ADMIN: the default case passes either way, which is
    // why the --privileged case (which has it) checks the test can see an injection.
    const marker = "ZQINJECTEDQZ";
    const screen = await inPane([], marker);
    expect(screen).toMatch(/tiocsti fd0=\w+ fd1=\w+ fd2=\w+ devtty=\w+/);
    expect(screen).not.toMatch(/=ok/);
    expect(screen).not.toContain(marker);
    const priv = await inPane(PRIV, marker);
    expect(priv).toMatch(/tiocsti .*fd1=ok/);
    expect(priv).toContain(marker);
    expect(legacy).not.toBe("");
  }, 60000);
});
