/**
 * `nsbox run`: what the container is made of, checked against the kernel.
 * Namespaces, the pivoted overlay root, /dev, /proc, /sys, the process's
 * identity and environment, volumes and tmpfs, tarball rootfs and their cache.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname as hostHostname } from "node:os";
import { join } from "node:path";
import { containerCgroups, DEFAULT_PATH, lines, ls, procStatus, sha256File, treeManifest, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("basics");

/** Runs sh -c script in the busybox rootfs and expects exit 0; returns stdout. */
async function sh(script: string, flags: string[] = [], env?: Record<string, string | undefined>): Promise<string> {
  const r = await ctx.run([...flags, ctx.rootfs, "sh", "-c", script], { env });
  if (r.code !== 0) throw new Error(`exit ${r.code}: stdout ${JSON.stringify(r.stdout)} stderr ${JSON.stringify(r.stderr)}`);
  return r.stdout;
}

/** The fields of a mountinfo line: mount point, fs type, per-mount options, super options, device. */
function parseMountinfo(text: string) {
  return lines(text).map((l) => {
    const f = l.split(" ");
    const dash = f.indexOf("-");
    return { dev: f[2] as string, mountPoint: f[4] as string, opts: f[5] as string, fstype: f[dash + 1] as string, super: f[dash + 3] ?? "" };
  });
}

describe("processes and namespaces", () => {
  test("the command is PID 1", async () => {
    expect(await sh("echo $$")).toBe("1\n");
  });

  test("/proc lists only the container's processes", async () => {
    const out = await sh("ls /proc; echo ---; cat /proc/[0-9]*/comm");
    const [list, comms] = out.split("---\n") as [string, string];
    const pids = lines(list).filter((e) => /^\d+$/.test(e));
    expect(pids).toContain("1");
    // sh, ls/cat and maybe a subshell: nothing of the host
    expect(pids.length).toBeLessThanOrEqual(4);
    const hostPids = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
    expect(hostPids.length).toBeGreaterThan(pids.length + 5);
    for (const c of lines(comms)) expect(["sh", "cat", "ls", "busybox"]).toContain(c);
  });

  test("the host's processes cannot be signalled or seen by pid", async () => {
    // Our own pid in the host namespace means nothing inside.
    const out = await sh(
      `test -e /proc/${process.pid}/status && cat /proc/${process.pid}/comm; kill -0 ${process.pid} 2>/dev/null && echo reachable; echo done`,
    );
    expect(out).not.toContain("reachable");
    expect(out).not.toContain("bun");
  });

  test("the container's PID 1 is in a new pid namespace on the host (NSpid)", async () => {
    const r = ctx.start(["run", ctx.rootfs, "sh", "-c", "echo ready; sleep 3"]);
    await r.waitFor("ready");
    const pid = await r.containerPid();
    const st = procStatus(pid);
    expect(st?.NSpid?.split(/\s+/)).toEqual([String(pid), "1"]);
    await r.stop();
  });

  test("ipc, net, mnt, uts, pid and cgroup namespaces differ from the host's; the user namespace is the host's", async () => {
    const kinds = ["ipc", "net", "mnt", "uts", "pid", "cgroup", "user"];
    const out = lines(await sh(`for n in ${kinds.join(" ")}; do readlink /proc/self/ns/$n; done`));
    expect(out.length).toBe(kinds.length);
    kinds.forEach((k, i) => {
      const host = readlinkSync(`/proc/self/ns/${k}`);
      expect(out[i]).toMatch(new RegExp(`^${k}:\\[\\d+\\]$`));
      if (k === "user") expect(out[i]).toBe(host);
      else expect(out[i]).not.toBe(host);
    });
  });

  /** Interface names from /proc/net/dev (kernel's list for the reader's network namespace). */
  const ifaces = (procNetDev: string) =>
    lines(procNetDev)
      .filter((l) => /^\s*[^\s|]+:/.test(l))
      .map((l) => (l.trim().split(":")[0] as string).trim())
      .sort();

  test("--network none: the network namespace has only lo", async () => {
    expect(ifaces(await sh("cat /proc/net/dev", ["--network", "none"]))).toEqual(["lo"]);
  });

  test("default network: lo and eth0 in its own namespace; the host's interfaces are not there", async () => {
    const inside = ifaces(await sh("cat /proc/net/dev"));
    expect(inside).toEqual(["eth0", "lo"]);
    const host = ls("/sys/class/net").filter((n) => n !== "lo" && n !== "eth0");
    for (const n of host) expect(inside).not.toContain(n);
  });

  test("--userns: a new user namespace mapping container root to host 100000", async () => {
    const out = lines(await sh("readlink /proc/self/ns/user; cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; id -g", ["--userns"]));
    expect(out[0]).not.toBe(readlinkSync("/proc/self/ns/user"));
    expect(out[1]?.trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
    expect(out[2]?.trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
    expect(out.slice(3)).toEqual(["0", "0"]);
  });

  test("--userns: on the host the container's root is uid 100000, and it owns the rootfs inside", async () => {
    const r = ctx.start([
      "run",
      "--userns",
      ctx.rootfs,
      "sh",
      "-c",
      "stat -c '%u:%g' /bin/busybox /etc; touch /newfile && stat -c '%u' /newfile; echo ready; sleep 3",
    ]);
    await r.waitFor("ready");
    const st = procStatus(await r.containerPid());
    expect(st?.Uid?.split(/\s+/)).toEqual(["100000", "100000", "100000", "100000"]);
    expect(st?.Gid?.split(/\s+/)).toEqual(["100000", "100000", "100000", "100000"]);
    const res = await r.stop();
    expect(lines(res.stdout).slice(0, 3)).toEqual(["0:0", "0:0", "0"]);
  });

  test("--userns=HOSTUID:COUNT maps that range", async () => {
    const out = await sh("cat /proc/self/uid_map", ["--userns=200000:1000"]);
    expect(out.trim().split(/\s+/)).toEqual(["0", "200000", "1000"]);
  });

  test("without --user the process has root's ids and no supplementary groups of the host", async () => {
    const out = await sh("grep -E '^(Uid|Gid|Groups):' /proc/self/status");
    const st = Object.fromEntries(lines(out).map((l) => [l.split(":")[0], (l.split(":")[1] ?? "").trim()]));
    expect(st.Uid?.split(/\s+/)).toEqual(["0", "0", "0", "0"]);
    expect(st.Gid?.split(/\s+/)).toEqual(["0", "0", "0", "0"]);
    expect(st.Groups).toBe("");
  });
});

describe("hostname", () => {
  test("default: the first 12 hex digits of the container id", async () => {
    const before = hostHostname();
    const r = ctx.start(["run", ctx.rootfs, "sh", "-c", "hostname; echo $HOSTNAME; cat /proc/sys/kernel/hostname; echo ready; sleep 3"]);
    await r.waitFor("ready");
    const ids = ls(join(ctx.dataRoot, "containers"));
    await r.stop();
    const [h, envH, procH] = lines(r.stdout);
    expect(h).toMatch(/^[0-9a-f]{12}$/);
    expect(envH).toBe(h);
    expect(procH).toBe(h);
    expect(ids.length).toBe(1);
    expect(ids[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(ids[0]?.slice(0, 12)).toBe(h as string);
    expect(hostHostname()).toBe(before);
  });

  test("two containers get different hostnames", async () => {
    const [a, b] = await Promise.all([sh("hostname"), sh("hostname")]);
    expect(a).not.toBe(b);
  });

  test("--hostname sets it (uname, /proc, $HOSTNAME) and the host's is untouched", async () => {
    const before = hostHostname();
    const out = lines(await sh("hostname; uname -n; cat /proc/sys/kernel/hostname; echo $HOSTNAME", ["--hostname", "box-1.example"]));
    expect(out).toEqual(["box-1.example", "box-1.example", "box-1.example", "box-1.example"]);
    expect(hostHostname()).toBe(before);
  });

  test("changing the hostname inside needs CAP_SYS_ADMIN (as in docker), and does not change the host's", async () => {
    const before = hostHostname();
    const r = await ctx.run([ctx.rootfs, "hostname", "changed-inside"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Operation not permitted");
    expect(await sh("hostname changed-inside && hostname", ["--cap-add", "SYS_ADMIN"])).toBe("changed-inside\n");
    expect(hostHostname()).toBe(before);
  });
});

describe("the root filesystem", () => {
  test("ls / shows exactly the rootfs' entries", async () => {
    const out = lines(await sh("ls -1A /")).sort();
    expect(out).toEqual(ls(ctx.rootfs));
  });

  test("the host's files are unreachable (the test's directory, /work, the host's /etc)", async () => {
    writeFileSync(join(ctx.tmp, "host-marker"), "host\n");
    const hostMachineId = existsSync("/etc/machine-id") ? readFileSync("/etc/machine-id", "utf8").trim() : "";
    const out = await sh(
      `test -e ${ctx.tmp} && echo tmp-visible; test -e ${ctx.tmp}/host-marker && echo marker-visible; test -e /work && echo work-visible; cat /etc/machine-id 2>/dev/null; ls /.. ; cd /..; pwd`,
    );
    expect(out).not.toContain("visible");
    if (hostMachineId) expect(out).not.toContain(hostMachineId);
    expect(lines(out).slice(-1)).toEqual(["/"]);
    expect(lines(out).slice(0, -1).sort()).toEqual(ls(ctx.rootfs));
  });

  test("mountinfo inside: one overlay root, no trace of the host's mounts", async () => {
    const inside = parseMountinfo(await sh("cat /proc/1/mountinfo"));
    const roots = inside.filter((m) => m.mountPoint === "/");
    // pivot_root(".", ".") + detach: the old root must not stay stacked on "/"
    expect(roots.length).toBe(1);
    expect(roots[0]?.fstype).toBe("overlay");
    expect(roots[0]?.super).toContain(`lowerdir=${ctx.rootfs}`);
    // the layer is deleted at exit: nothing is synced for it (see overlayVolatile;
    // Linux 6.x shows the option as fsync=volatile, 5.10-5.19 as volatile)
    expect(roots[0]?.super.split(",").some((o) => o === "volatile" || o === "fsync=volatile")).toBe(true);
    // /proc, /dev, /sys and what is below them, and the files nsbox binds into /etc
    const ours = /^\/((proc|dev|sys)(\/.*)?|etc\/(hosts|hostname|resolv\.conf))?$/;
    for (const m of inside) expect(m.mountPoint).toMatch(ours);
    // none of the host's other mount points (e.g. /work, /tmp, /run, /boot)
    const host = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
    const hostOnly = host.map((m) => m.mountPoint).filter((mp) => !ours.test(mp));
    for (const mp of hostOnly) expect(inside.map((m) => m.mountPoint)).not.toContain(mp);
    // the container's own: /, /proc, /dev and 4 below it, /sys, /sys/fs/cgroup and its
    // controllers, 3 files in /etc, and the masked and read-only paths of /proc and /sys
    expect(inside.length).toBeLessThan(40);
  });

  test("the rootfs is never modified: writes, deletes and chmods go to a per-container layer", async () => {
    const cgroupsBefore = containerCgroups();
    const before = treeManifest(ctx.rootfs);
    const out = await sh(
      "echo new > /etc/newfile && echo more >> /etc/passwd && rm /bin/ls && rm -r /home && mkdir -p /new/dir && chmod 700 /tmp && " +
        "mv /etc/group /etc/group.moved && ln -s /x /etc/link && touch /bin/busybox && " +
        "test ! -e /bin/ls && test -e /etc/newfile && echo changed",
    );
    expect(out).toBe("changed\n");
    expect(treeManifest(ctx.rootfs)).toEqual(before);
    // the next container starts from the original tree
    expect(await sh("test -e /bin/ls && test -d /home && test ! -e /etc/newfile && tail -1 /etc/passwd")).not.toContain("more");
    // and the layer, the state and the cgroup are gone
    expect(ls(join(ctx.dataRoot, "containers"))).toEqual([]);
    expect(ls(ctx.stateRoot).filter((e) => /^[0-9a-f]{64}$/.test(e))).toEqual([]);
    expect(containerCgroups()).toEqual(cgroupsBefore);
  });

  test("/sys is read-only", async () => {
    const r = await ctx.run([
      ctx.rootfs,
      "sh",
      "-c",
      "touch /sys/x; echo touch=$?; echo 1 > /sys/kernel/mm/ksm/run; echo write=$?; grep ' /sys ' /proc/self/mountinfo",
    ]);
    expect(lines(r.stdout).slice(0, 2)).toEqual(["touch=1", "write=1"]);
    expect(r.stderr).toContain("Read-only file system");
    const m = parseMountinfo(lines(r.stdout)[2] ?? "")[0];
    expect(m?.fstype).toBe("sysfs");
    expect(m?.opts.split(",")).toContain("ro");
  });

  test("/sys keeps nosuid,nodev,noexec (and ro) as the spec asks", async () => {
    const m = parseMountinfo(await sh("grep ' /sys ' /proc/self/mountinfo"))[0];
    expect(m?.opts.split(",")).toEqual(expect.arrayContaining(["ro", "nosuid", "nodev", "noexec"]));
  });

  test("/proc is nosuid,nodev,noexec", async () => {
    const m = parseMountinfo(await sh("grep ' /proc ' /proc/self/mountinfo"))[0];
    expect(m?.opts.split(",")).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
  });

  test("/proc is a proc mount of the container's pid namespace", async () => {
    const out = lines(await sh("grep ' /proc ' /proc/self/mountinfo; readlink /proc/self"));
    expect(parseMountinfo(out[0] ?? "")[0]?.fstype).toBe("proc");
    // /proc/self of `readlink`, a small pid of the container, not a host pid
    expect(Number(out[1])).toBeLessThan(10);
  });

  test("--read-only: / cannot be written, /dev/shm and --tmpfs can", async () => {
    const r = await ctx.run([
      "--read-only",
      "--tmpfs",
      "/scratch",
      ctx.rootfs,
      "sh",
      "-c",
      "touch /x; echo root=$?; touch /tmp/y; echo tmp=$?; touch /dev/shm/z; echo shm=$?; touch /scratch/w; echo scratch=$?; grep ' / ' /proc/self/mountinfo",
    ]);
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out.slice(0, 4)).toEqual(["root=1", "tmp=1", "shm=0", "scratch=0"]);
    expect(r.stderr).toContain("Read-only file system");
    expect(parseMountinfo(out[4] ?? "")[0]?.opts.split(",")).toContain("ro");
  });

  test("without --read-only / is writable", async () => {
    expect(await sh("touch /x && echo ok")).toBe("ok\n");
  });
});

describe("/dev", () => {
  test("device nodes with mode crw-rw-rw- and the right numbers", async () => {
    const want: Record<string, [number, number]> = {
      null: [1, 3],
      zero: [1, 5],
      full: [1, 7],
      random: [1, 8],
      urandom: [1, 9],
      tty: [5, 0],
    };
    const names = Object.keys(want);
    const out = lines(await sh(`for d in ${names.join(" ")}; do stat -c '%n %A %t %T' /dev/$d; done`));
    expect(out.length).toBe(names.length);
    for (const l of out) {
      const [path, mode, maj, min] = l.split(" ") as [string, string, string, string];
      const dev = want[path.replace("/dev/", "")] as [number, number];
      expect(mode).toBe("crw-rw-rw-");
      expect([Number.parseInt(maj, 16), Number.parseInt(min, 16)]).toEqual(dev);
    }
  });

  test("the devices work: null, zero, full, urandom", async () => {
    const r = await ctx.run([
      ctx.rootfs,
      "sh",
      "-c",
      "echo x > /dev/null && echo null-ok; head -c 5 /dev/zero | od -An -tx1; echo x > /dev/full; echo full=$?; head -c 32 /dev/urandom | wc -c",
    ]);
    const out = lines(r.stdout).map((l) => l.trim());
    expect(out).toEqual(["null-ok", "00 00 00 00 00", "full=1", "32"]);
    expect(r.stderr).toContain("No space left on device");
  });

  test("only nsbox's devices: no host disks or consoles", async () => {
    const entries = lines(await sh("ls -1A /dev")).sort();
    expect(entries).toEqual(
      ["core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"].sort(),
    );
  });

  test("/dev/pts is a new devpts instance and /dev/ptmx points into it", async () => {
    const out = lines(await sh("readlink /dev/ptmx; stat -c '%A' /dev/pts/ptmx; ls -1A /dev/pts; grep ' /dev/pts ' /proc/self/mountinfo"));
    expect(out[0]).toBe("pts/ptmx");
    expect(out[1]).toBe("crw-rw-rw-");
    expect(out[2]).toBe("ptmx"); // no host ptys
    const m = parseMountinfo(out[3] ?? "")[0];
    expect(m?.fstype).toBe("devpts");
    expect(m?.super).toContain("ptmxmode=666");
    const hostPts = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8")).find((x) => x.mountPoint === "/dev/pts");
    if (hostPts) expect(m?.dev).not.toBe(hostPts.dev);
  });

  test("a pty can be opened from /dev/ptmx", async () => {
    // busybox script is not there; opening ptmx and seeing a pts appear is enough
    const out = await sh("exec 3<>/dev/ptmx; ls /dev/pts | sort | tr '\\n' ' '");
    expect(out.trim()).toBe("0 ptmx");
  });

  test("/dev/shm, /dev/mqueue and the /dev/fd, stdin, stdout, stderr links", async () => {
    const out = lines(
      await sh(
        "grep -E ' /dev/(shm|mqueue) ' /proc/self/mountinfo; for l in fd stdin stdout stderr; do readlink /dev/$l; done; touch /dev/shm/a && echo shm-ok",
      ),
    );
    const mounts = parseMountinfo(out.slice(0, 2).join("\n"))
      .map((m) => `${m.mountPoint} ${m.fstype}`)
      .sort();
    expect(mounts).toEqual(["/dev/mqueue mqueue", "/dev/shm tmpfs"]);
    expect(out.slice(2)).toEqual(["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "shm-ok"]);
  });

  test("--userns: the devices are the host's nodes, usable by the container's root", async () => {
    const out = lines(await sh("stat -c '%A %t %T' /dev/null /dev/zero; echo x > /dev/null && echo ok", ["--userns"]));
    expect(out).toEqual(["crw-rw-rw- 1 3", "crw-rw-rw- 1 5", "ok"]);
  });
});

describe("process settings", () => {
  test("-w creates the working directory (not in the rootfs) and starts there", async () => {
    expect(await sh("pwd; test -d /a/b/c && echo dir", ["-w", "/a/b/c"])).toBe("/a/b/c\ndir\n");
    expect(existsSync(join(ctx.rootfs, "a"))).toBe(false);
    expect(await sh("pwd", ["--workdir", "/etc"])).toBe("/etc\n");
  });

  test("default cwd is /", async () => {
    expect(await sh("pwd")).toBe("/\n");
  });

  test("default environment: PATH, HOME, HOSTNAME and nothing of the host (no TERM without -t)", async () => {
    const out = await sh("env", ["--hostname", "envbox"], { TERM: "xterm-256color", NSBOX_TEST_SECRET: "leak" });
    const env = Object.fromEntries(lines(out).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
    expect(env.PATH).toBe(DEFAULT_PATH);
    expect(env.HOME).toBe("/root");
    expect(env.HOSTNAME).toBe("envbox");
    expect(env.TERM).toBeUndefined();
    expect(env.NSBOX_TEST_SECRET).toBeUndefined();
    expect(env.NSBOX_ROOT).toBeUndefined();
    // the shell adds PWD and SHLVL; nothing else
    expect(Object.keys(env).sort()).toEqual(["HOME", "HOSTNAME", "PATH", "PWD", "SHLVL"]);
  });

  test("the command's own environment is exactly nsbox's (checked with /proc/1/environ)", async () => {
    const r = await ctx.run(["-e", "A=1", ctx.rootfs, "cat", "/proc/self/environ"], { env: { TERM: "dumb" } });
    expect(r.stdout.split("\0").filter(Boolean).sort()).toEqual(
      ["A=1", "HOME=/root", `HOSTNAME=${r.stdout.match(/HOSTNAME=([^\0]*)/)?.[1]}`, `PATH=${DEFAULT_PATH}`].sort(),
    );
  });

  test("-e KEY=VAL, -e KEY (the host's value), overrides, values with = and spaces", async () => {
    const out = await sh(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax, not a template
      'echo "$FOO|$PASSED|$HOME|$PATH|$EQ|$SPACE|${UNSET_ON_HOST-unset}"',
      ["-e", "FOO=bar", "-e", "PASSED", "--env", "HOME=/custom", "-e", "PATH=/bin", "-e", "EQ=a=b=c", "-e", "SPACE=one two", "-e", "UNSET_ON_HOST"],
      { PASSED: "from-host", UNSET_ON_HOST: undefined },
    );
    expect(out).toBe("bar|from-host|/custom|/bin|a=b=c|one two|unset\n");
  });

  test("-u uid:gid sets the ids the kernel sees", async () => {
    const out = lines(await sh("id -u; id -g; grep -E '^(Uid|Gid):' /proc/self/status | tr -s '\\t ' ' '; echo $HOME", ["-u", "1000:1001"]));
    expect(out).toEqual(["1000", "1001", "Uid: 1000 1000 1000 1000", "Gid: 1001 1001 1001 1001", "/"]);
  });

  test("-u nobody: uid, gid and HOME from the container's /etc/passwd, and root's files are closed to it", async () => {
    const r = await ctx.run(["-u", "nobody", ctx.rootfs, "sh", "-c", "id -u; id -g; echo $HOME; ls /root; echo ls=$?; touch /etc/x; echo touch=$?"]);
    expect(lines(r.stdout)).toEqual(["65534", "65534", "/home", "ls=1", "touch=1"]);
    expect(r.stderr).toContain("Permission denied");
  });

  test("-u name:group", async () => {
    expect(lines(await sh("id -u; id -g", ["-u", "nobody:tty"]))).toEqual(["65534", "5"]);
  });

  test("-u with a uid that has no passwd entry: gid 0, HOME /", async () => {
    expect(lines(await sh("id -u; id -g; echo $HOME", ["-u", "4242"]))).toEqual(["4242", "0", "/"]);
  });
});

describe("volumes and tmpfs", () => {
  test("-v HOST:CTR is a read-write bind of the host directory", async () => {
    const vol = ctx.mkdir("vol-rw");
    writeFileSync(join(vol, "from-host"), "host data\n");
    const out = await sh("cat /data/from-host; echo container data > /data/from-ctr; grep ' /data ' /proc/self/mountinfo | cut -d' ' -f6", [
      "-v",
      `${vol}:/data`,
    ]);
    expect(lines(out)[0]).toBe("host data");
    expect(lines(out)[1]?.split(",")).toContain("rw");
    expect(readFileSync(join(vol, "from-ctr"), "utf8")).toBe("container data\n");
    expect(statSync(join(vol, "from-ctr")).uid).toBe(0);
  });

  test("-v HOST:CTR:ro cannot be written", async () => {
    const vol = ctx.mkdir("vol-ro");
    writeFileSync(join(vol, "f"), "ro data\n");
    const r = await ctx.run(["-v", `${vol}:/ro:ro`, ctx.rootfs, "sh", "-c", "cat /ro/f; touch /ro/new; echo touch=$?; rm /ro/f; echo rm=$?"]);
    expect(lines(r.stdout)).toEqual(["ro data", "touch=1", "rm=1"]);
    expect(r.stderr).toContain("Read-only file system");
    expect(ls(vol)).toEqual(["f"]);
  });

  test("-v with a file, and the mount point is created in the container only", async () => {
    const dir = ctx.mkdir("vol-file");
    writeFileSync(join(dir, "conf"), "key=value\n");
    expect(await sh("cat /etc/app/app.conf", ["-v", `${dir}/conf:/etc/app/app.conf:ro`])).toBe("key=value\n");
    expect(existsSync(join(ctx.rootfs, "etc/app"))).toBe(false);
  });

  test("-v mounts are nosuid,nodev and gone from the host's mount table", async () => {
    const vol = ctx.mkdir("vol-flags");
    const before = ctx.mounts();
    const out = await sh("grep ' /v ' /proc/self/mountinfo | cut -d' ' -f6", ["-v", `${vol}:/v`]);
    expect(out.trim().split(",")).toEqual(expect.arrayContaining(["nosuid", "nodev"]));
    expect(ctx.mounts()).toEqual(before);
  });

  test("--tmpfs PATH[:opts]: a fresh tmpfs, nosuid,nodev,noexec, with the size asked for", async () => {
    const r = await ctx.run([
      "--tmpfs",
      "/scratch:size=1m,mode=1777",
      ctx.rootfs,
      "sh",
      "-c",
      "grep ' /scratch ' /proc/self/mountinfo; stat -c %a /scratch; ls -A /scratch | wc -l; echo data > /scratch/f && cat /scratch/f; dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null; echo dd=$?",
    ]);
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    const m = parseMountinfo(out[0] ?? "")[0];
    expect(m?.fstype).toBe("tmpfs");
    expect(m?.opts.split(",")).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
    expect(m?.super).toContain("size=1024k");
    expect(out.slice(1)).toEqual(["1777", "0", "data", "dd=1"]);
  });

  test("--tmpfs is noexec by default", async () => {
    const r = await ctx.run(["--tmpfs", "/scratch:size=8m", ctx.rootfs, "sh", "-c", "cp /bin/busybox /scratch/bb && /scratch/bb true; echo exec=$?"]);
    expect(r.stdout).toBe("exec=126\n");
  });
});

describe("ROOTFS as a tarball", () => {
  const kinds = [
    { ext: ".tar", flags: ["-cf"] },
    { ext: ".tar.gz", flags: ["-czf"] },
    { ext: ".tgz", flags: ["-czf"] },
    { ext: ".tar.zst", flags: ["--zstd", "-cf"] },
  ];
  const made: Record<string, string> = {};
  const tarball = (ext: string): string => {
    const k = kinds.find((x) => x.ext === ext);
    if (!k) throw new Error(ext);
    const path = join(ctx.tmp, `busybox${ext}`);
    if (!made[ext]) {
      const r = Bun.spawnSync(["tar", "-C", ctx.rootfs, ...k.flags, path, "."], { stderr: "pipe" });
      if (r.exitCode !== 0) throw new Error(`tar failed: ${r.stderr.toString()}`);
      made[ext] = path;
    }
    return path;
  };

  for (const { ext } of kinds) {
    test(`${ext}: runs, extracted into NSBOX_ROOT/rootfs/<sha256 of the tarball>`, async () => {
      const tb = tarball(ext);
      const r = await ctx.run([tb, "sh", "-c", "echo $$; head -1 /etc/passwd; ls -1A / | wc -l"]);
      expect(r.code).toBe(0);
      expect(lines(r.stdout)).toEqual(["1", "root:x:0:0:root:/root:/bin/sh", String(ls(ctx.rootfs).length)]);
      const cached = join(ctx.dataRoot, "rootfs", sha256File(tb));
      expect(existsSync(join(cached, "bin/busybox"))).toBe(true);
      expect(ls(join(ctx.dataRoot, "rootfs")).filter((e) => e.startsWith(".tmp"))).toEqual([]);
    });
  }

  test("the cache is reused: one digest directory, same inode, not extracted again", async () => {
    const tb = tarball(".tar.zst");
    const root = join(ctx.tmp, "cache-root");
    mkdirSync(root);
    const env = { NSBOX_ROOT: root, NSBOX_STATE: join(root, "run") };
    const first = await ctx.run([tb, "sh", "-c", "echo $$"], { env });
    expect(first.stdout).toBe("1\n");
    const digests = () => ls(join(root, "rootfs")).filter((e) => e !== "by-path");
    expect(digests()).toEqual([sha256File(tb)]);
    const dir = join(root, "rootfs", sha256File(tb));
    const ino = statSync(dir).ino;
    const mtime = statSync(dir).mtimeMs;
    // A marker only the cached tree has: a re-extracted tree would not have it.
    writeFileSync(join(dir, "cache-marker"), "cached\n");
    const second = await ctx.run([tb, "cat", "/cache-marker"], { env });
    expect(second.code).toBe(0);
    expect(second.stdout).toBe("cached\n");
    expect(digests()).toEqual([sha256File(tb)]);
    expect(statSync(dir).ino).toBe(ino);
    expect(statSync(join(dir, "bin"))).toBeDefined();
    expect(statSync(dir).mtimeMs).toBeGreaterThanOrEqual(mtime);
    // containers never write into the cached tree
    const before = treeManifest(dir);
    await ctx.run([tb, "sh", "-c", "rm -rf /etc /bin/sh; echo x > /cache-marker"], { env });
    expect(treeManifest(dir)).toEqual(before);
  });

  test("--userns with a tarball rootfs", async () => {
    const r = await ctx.run(["--userns", tarball(".tar"), "sh", "-c", "echo $$; id -u; touch /f && echo ok"]);
    expect(lines(r.stdout)).toEqual(["1", "0", "ok"]);
  });
});

describe("an untrusted rootfs cannot reach the host", () => {
  /** A copy of the busybox rootfs that the test may change. */
  function rootfsCopy(name: string): string {
    const dir = join(ctx.tmp, name);
    const r = Bun.spawnSync(["cp", "-a", ctx.rootfs, dir]);
    if (r.exitCode !== 0) throw new Error("cp -a failed");
    return dir;
  }

  test("a symlink in the rootfs cannot steer -v, --tmpfs or -w onto the host", async () => {
    const evil = rootfsCopy("evil-links");
    symlinkSync("/tmp", join(evil, "escape"));
    symlinkSync("../../../../../../tmp", join(evil, "escape-rel"));
    const vol = ctx.mkdir("evil-vol");
    writeFileSync(join(vol, "in-volume"), "v\n");
    const tag = `nsbox-escape-${process.pid}`;
    const before = ctx.mounts();
    const r = await ctx.run([
      "-v",
      `${vol}:/escape/${tag}-v`,
      "--tmpfs",
      `/escape-rel/${tag}-t`,
      "-w",
      `/escape/${tag}-w`,
      evil,
      "sh",
      "-c",
      `pwd; ls /tmp/${tag}-v; grep -c ' /tmp/${tag}-t ' /proc/self/mountinfo`,
    ]);
    // on the host: nothing created in /tmp, nothing mounted
    for (const s of ["v", "t", "w"]) expect(existsSync(`/tmp/${tag}-${s}`)).toBe(false);
    expect(ctx.mounts()).toEqual(before);
    // inside: the links were resolved within the rootfs
    expect(lines(r.stdout)).toEqual([`/tmp/${tag}-w`, "in-volume", "1"]);
    expect(r.code).toBe(0);
  });

  test("/etc/passwd as a symlink to a host file is read inside the rootfs, not on the host", async () => {
    const evil = rootfsCopy("evil-passwd");
    const hostFile = join(ctx.tmp, "host-passwd");
    writeFileSync(hostFile, "hostonly:x:4321:4321::/home:/bin/sh\n");
    rmSync(join(evil, "etc/passwd"));
    symlinkSync(hostFile, join(evil, "etc/passwd"));
    const r = await ctx.run(["-u", "hostonly", evil, "id"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("hostonly");
    expect(r.stdout).not.toContain("4321");
  });
});
