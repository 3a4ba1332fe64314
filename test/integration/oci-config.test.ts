/**
 * config.json honoured: process settings (user, groups, umask, env, cwd,
 * capabilities, rlimits, no_new_privs, oomScoreAdj), hostname and domainname,
 * sysctl, personality, mounts (bind, tmpfs, read-only root), masked and
 * read-only paths, seccomp, namespaces joined by path, user namespace maps, and
 * the cgroup limits. Each runs `run --bundle` and reads what the process saw.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mountsBelow, useNsbox, waitUntil } from "../helpers/nsbox.ts";
import { type Config, makeBundle, ociHarness } from "../helpers/oci.ts";

const ctx = useNsbox("ocicfg");
const h = ociHarness(ctx);

/** Runs the shell script in a container made from the edited spec; returns its stdout (and asserts exit 0). */
async function seen(id: string, script: string, edit: (c: Config) => void = () => {}): Promise<string> {
  const b = makeBundle(ctx, id, (c) => {
    c.process.args = ["sh", "-c", script];
    edit(c);
  });
  const r = await h.oci(["run", "--bundle", b, id]);
  expect([id, r.code, r.stderr]).toEqual([id, 0, ""]);
  return r.stdout;
}

describe("process", () => {
  test("user, additional groups, umask, env, cwd", async () => {
    const out = await seen("proc", 'id -u; id -g; id -G; umask; echo "$GREETING"; pwd', (c) => {
      c.process.user = { uid: 1000, gid: 1001, additionalGids: [5, 1002], umask: 0o27 };
      c.process.env.push("GREETING=hello there");
      c.process.cwd = "/tmp";
      c.mounts.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid"] });
    });
    expect(out).toBe("1000\n1001\n1001 5 1002\n0027\nhello there\n/tmp\n");
  });

  test("capability sets, no_new_privs, rlimits, oom_score_adj", async () => {
    const out = await seen("caps", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj", (c) => {
      c.process.capabilities = { bounding: ["CAP_KILL", "CAP_CHOWN"], effective: ["CAP_KILL"], permitted: ["CAP_KILL"] };
      c.process.noNewPrivileges = true;
      c.process.rlimits = [{ type: "RLIMIT_NOFILE", soft: 123, hard: 456 }];
      c.process.oomScoreAdj = 321;
    });
    // CAP_CHOWN is bit 0, CAP_KILL bit 5
    expect(out).toBe("CapEff:\t0000000000000020\nCapBnd:\t0000000000000021\nNoNewPrivs:\t1\n123\n456\n321\n");
  });
});

describe("the container's system", () => {
  test("hostname, domainname, sysctl, personality", async () => {
    const out = await seen("uts", "hostname; cat /proc/sys/kernel/domainname; cat /proc/sys/net/ipv4/ip_forward; uname -m", (c) => {
      c.hostname = "box1";
      c.domainname = "example.org";
      c.linux.sysctl = { "net.ipv4.ip_forward": "1" };
      c.linux.personality = { domain: "LINUX32" };
    });
    expect(out).toBe("box1\nexample.org\n1\ni686\n");
  });

  test("bind mounts (ro, rw), tmpfs, a read-only root, masked and read-only paths", async () => {
    const data = ctx.mkdir("cfg-data");
    writeFileSync(join(data, "f"), "from host\n");
    const out = await seen(
      "mnt",
      "cat /data/f; (echo x > /data/g) 2>/dev/null || echo ro-bind; echo y > /rw/h && echo rw-bind; echo z > /t/z && echo tmpfs; touch /x 2>/dev/null || echo ro-root; [ -s /proc/kcore ] || echo masked; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null || echo ro-sys",
      (c) => {
        const rw = join(data, "rw");
        mkdirSync(rw, { recursive: true });
        c.mounts.push({ destination: "/data", type: "bind", source: data, options: ["rbind", "ro"] });
        c.mounts.push({ destination: "/rw", type: "bind", source: rw, options: ["bind", "rw"] });
        c.mounts.push({ destination: "/t", type: "tmpfs", source: "tmpfs", options: ["size=1m"] });
      },
    );
    expect(out).toBe("from host\nro-bind\nrw-bind\ntmpfs\nro-root\nmasked\nro-sys\n");
    expect(readFileSync(join(data, "rw", "h"), "utf8")).toBe("y\n");
  });

  test("linux.devices: nodes with their type, numbers, mode and owner; the default ones", async () => {
    const out = await seen("devs", "stat -c '%n %F %t:%T %a %u:%g' /dev/fuse0 /dev/null /dev/zero; ls /dev/tty /dev/urandom /dev/full /dev/random", (c) => {
      c.linux.devices = [{ path: "/dev/fuse0", type: "c", major: 10, minor: 229, fileMode: 0o640, uid: 7, gid: 8 }];
    });
    expect(out).toBe(
      "/dev/fuse0 character special file a:e5 640 7:8\n/dev/null character special file 1:3 666 0:0\n/dev/zero character special file 1:5 666 0:0\n/dev/full\n/dev/random\n/dev/tty\n/dev/urandom\n",
    );
  });

  test("what runc and crun accept: podman's tmpcopyup tmpfs, propagation words on a tmpfs, data words on a bind, a FIFO, RLIMIT_AS", async () => {
    const out = await seen(
      "accepts",
      "head -1 /etc/passwd; stat -c '%u:%g %a' /etc/owned /etc/owned/f; touch /etc/new && echo etc-writable; awk '$5 == \"/s\"' /proc/self/mountinfo | grep -o 'shared:[0-9]*' | sed 's/:.*//'; stat -c '%F %a' /dev/pipe0; ulimit -v; ulimit -Hv",
      (c) => {
        // (tmpcopyup keeps the owners, and a set-gid bit a chown would have cleared)
        mkdirSync(join(ctx.rootfs, "etc/owned"), { recursive: true });
        writeFileSync(join(ctx.rootfs, "etc/owned/f"), "");
        chownSync(join(ctx.rootfs, "etc/owned/f"), 1234, 5678);
        chmodSync(join(ctx.rootfs, "etc/owned/f"), 0o2755);
        chownSync(join(ctx.rootfs, "etc/owned"), 42, 43);
        c.mounts.push({ destination: "/etc", type: "tmpfs", source: "tmpfs", options: ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"] });
        c.mounts.push({ destination: "/s", type: "tmpfs", source: "tmpfs", options: ["shared"] });
        c.mounts.push({ destination: "/b", type: "bind", source: ctx.mkdir("cfg-bindmode"), options: ["rbind", "mode=755"] });
        c.linux.devices = [{ path: "/dev/pipe0", type: "p", fileMode: 0o600 }];
        c.process.rlimits = [{ type: "RLIMIT_AS", soft: 2 ** 30, hard: 2 ** 31 }];
      },
    );
    expect(out).toBe("root:x:0:0:root:/root:/bin/sh\n42:43 755\n1234:5678 2755\netc-writable\nshared\nfifo 600\n1048576\n2097152\n");
  });

  test("no mount namespace: nothing is mounted, the root is entered with chroot", async () => {
    const out = await seen("nomntns", "ls /bin/sh; ls /proc | wc -l", (c) => {
      c.linux.namespaces = [];
      c.mounts = [];
      c.linux.maskedPaths = [];
      c.linux.readonlyPaths = [];
      delete c.hostname;
    });
    // the rootfs's /proc is an empty directory: nothing mounted it
    expect(out).toBe("/bin/sh\n0\n");
  });

  test("--no-pivot: the rootfs is moved onto / and chrooted into (runc's msMoveRoot), with its mounts", async () => {
    // (what differs from pivot_root is only the old root left under the new one,
    // which nothing in the container can reach: the step itself is checked in test/unit/oci-create)
    const b = makeBundle(ctx, "nopivot", (c) => {
      c.process.args = [
        "sh",
        "-c",
        "ls /bin/sh; awk '$5 == \"/\"' /proc/self/mountinfo | wc -l; [ -e /proc/self/status ] && echo proc; touch /x 2>/dev/null || echo ro-root",
      ];
    });
    const r = await h.oci(["run", "--no-pivot", "--bundle", b, "nopivot"]);
    expect([r.code, r.stderr, r.stdout]).toEqual([0, "", "/bin/sh\n1\nproc\nro-root\n"]);
  });

  test("--no-pivot detaches the old root's full proc and sysfs mounts before the move, as runc's msMoveRoot", async () => {
    // The old root is out of the container's reach by path, so the namespace is
    // looked at through a process that keeps the old root: the holder of a
    // mount namespace the container joins (whose mountinfo nsbox reads for the list).
    const holder = Bun.spawn(["unshare", "-m", "--propagation", "private", "sleep", "1000"], { stdout: "ignore", stderr: "inherit" });
    try {
      const nsPath = `/proc/${holder.pid}/ns/mnt`;
      await waitUntil(() => readlinkSync(nsPath) !== readlinkSync("/proc/self/ns/mnt"), 10000);
      const full = (fstype: string) =>
        readFileSync(`/proc/${holder.pid}/mountinfo`, "utf8")
          .split("\n")
          .filter((l) => l.split(" ")[3] === "/" && l.split(" - ")[1]?.startsWith(`${fstype} `)).length;
      // the host's, before
      expect(full("proc")).toBeGreaterThanOrEqual(1);
      expect(full("sysfs")).toBeGreaterThanOrEqual(1);
      const b = makeBundle(ctx, "nopivotmask", (c) => {
        c.process.args = ["sleep", "1000"];
        c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) => (n.type === "mount" ? { type: "mount", path: nsPath } : n));
      });
      const r = await h.oci(["run", "-d", "--no-pivot", "--bundle", b, "nopivotmask"]);
      expect([r.code, r.stderr]).toEqual([0, ""]);
      // only the container's own are left (they show at /proc and /sys: its root was moved onto the holder's)
      expect([full("proc"), full("sysfs")]).toEqual([1, 1]);
      const e = await h.oci(["exec", "nopivotmask", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; ls /sys/kernel >/dev/null && echo sys"]);
      expect([e.code, e.stderr, e.stdout]).toEqual([0, "", "sleep 1000 sys\n"]);
      expect((await h.oci(["delete", "--force", "nopivotmask"])).code).toBe(0);
    } finally {
      holder.kill("SIGKILL");
      await holder.exited;
    }
  });

  test("rootfsPropagation: private by default, shared and unbindable on request", async () => {
    const rootLine = "awk '$5 == \"/\"' /proc/self/mountinfo";
    const tags = (out: string) => (out.split(" - ")[0] ?? "").split(" ").slice(6).join(" ");
    expect(tags(await seen("propdef", rootLine))).toBe("");
    expect(tags(await seen("propsh", rootLine, (c) => (c.linux.rootfsPropagation = "rshared")))).toMatch(/^shared:\d+$/);
    expect(tags(await seen("propub", rootLine, (c) => (c.linux.rootfsPropagation = "unbindable")))).toBe("unbindable");
  });

  test("seccomp: a syscall denied with the errno asked for", async () => {
    const out = await seen("scmp", "mkdir /tmp/d 2>&1 || true; echo done", (c) => {
      c.mounts.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs" });
      c.linux.seccomp = { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 }] };
    });
    expect(out).toContain("Operation not permitted");
    expect(out).toEndWith("done\n");
  });

  test("a time namespace with its clock offsets (timeOffsets)", async () => {
    const hostUptime = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
    const out = await seen("timens", "cut -d' ' -f1 /proc/uptime; readlink /proc/self/ns/time", (c) => {
      c.linux.namespaces.push({ type: "time" });
      c.linux.timeOffsets = { boottime: { secs: 1000000, nanosecs: 0 }, monotonic: { secs: 500, nanosecs: 0 } };
    });
    const [uptime, ns] = out.trim().split("\n");
    expect(Number(uptime)).toBeGreaterThanOrEqual(hostUptime + 1000000);
    expect(Number(uptime)).toBeLessThan(hostUptime + 1000000 + 600);
    expect(ns).not.toBe(readlinkSync("/proc/self/ns/time"));
  });

  test("a user namespace with uid/gid maps", async () => {
    const out = await seen("userns", "cat /proc/self/uid_map; id -u", (c) => {
      c.linux.namespaces.push({ type: "user" });
      c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
      c.linux.resources = {};
    });
    const [map, uid] = out.trim().split("\n");
    expect(map?.trim().split(/\s+/)).toEqual(["0", "100000", "65536"]);
    expect(uid).toBe("0");
  });

  test("a namespace joined by path", async () => {
    const out = await seen("joinns", "readlink /proc/self/ns/net", (c) => {
      c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) => (n.type === "network" ? { type: "network", path: "/proc/self/ns/net" } : n));
    });
    // /proc/self of nsbox, the test's child: the test's own network namespace
    expect(out).toBe(`${readlinkSync("/proc/self/ns/net")}\n`);
  });
});

describe("a mount namespace joined by path", () => {
  test("gets the rootfs, its mounts and pivot_root, as runc and crun set them up in it; exec joins it; the runtime's namespace is untouched", async () => {
    // the namespace to join: a private copy of the test's, held by a sleep
    const holder = Bun.spawn(["unshare", "-m", "--propagation", "private", "sleep", "1000"], { stdout: "ignore", stderr: "inherit" });
    try {
      const nsPath = `/proc/${holder.pid}/ns/mnt`;
      await waitUntil(() => readlinkSync(nsPath) !== readlinkSync("/proc/self/ns/mnt"), 10000);
      const b = makeBundle(ctx, "joinmnt", (c) => {
        c.process.args = ["sleep", "1000"];
        c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) => (n.type === "mount" ? { type: "mount", path: nsPath } : n));
        c.mounts.push({ destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["size=64k"] });
      });
      const r = await h.oci(["run", "-d", "--bundle", b, "joinmnt"]);
      expect([r.code, r.stderr]).toEqual([0, ""]);
      const pid = JSON.parse((await h.oci(["state", "joinmnt"])).stdout).pid;
      // the container's process is in that namespace, pivoted into its rootfs with its mounts (/proc, /tmp)
      expect(readlinkSync(`/proc/${pid}/ns/mnt`)).toBe(readlinkSync(nsPath));
      const e = await h.oci([
        "exec",
        "joinmnt",
        "sh",
        "-c",
        "readlink /proc/self/ns/mnt; ls /bin/sh; grep -c ' /tmp .* tmpfs .*size=64k' /proc/self/mountinfo",
      ]);
      expect([e.code, e.stderr, e.stdout]).toEqual([0, "", `${readlinkSync(nsPath)}\n/bin/sh\n1\n`]);
      // pivot_root moved the holder's root too (the kernel's rule for a namespace's processes, as under runc)
      expect(readFileSync(`/proc/${holder.pid}/mountinfo`, "utf8")).toMatch(/ \/tmp .* tmpfs .*size=64k/);
      // nothing was mounted in the runtime's own namespace
      expect(mountsBelow(ctx.rootfs)).toEqual([]);
      expect((await h.oci(["delete", "--force", "joinmnt"])).code).toBe(0);
    } finally {
      holder.kill("SIGKILL");
      await holder.exited;
    }
  });
});

describe("resources", () => {
  test("memory and pids limits reach the container's cgroup", async () => {
    const out = await seen(
      "res",
      "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
      (c) => {
        c.linux.resources.memory = { limit: 64 * 1024 * 1024 };
        c.linux.resources.pids = { limit: 77 };
      },
    );
    expect(out).toBe(`${64 * 1024 * 1024}\n77\n`);
  });

  test("linux.cgroupsPath is the container's cgroup exactly; the levels nsbox made go with it", async () => {
    // below this test's own memory cgroup (the host's other hierarchies have it at /)
    const own = readFileSync("/proc/self/cgroup", "utf8").match(/^\d+:memory:(.*)$/m)?.[1] ?? "/";
    const level = `${own === "/" ? "" : own}/ocicfg-${process.pid}`;
    const path = `${level}/ctr`;
    const out = await seen("cgpath", "grep :memory: /proc/self/cgroup; cat /sys/fs/cgroup/memory/memory.limit_in_bytes", (c) => {
      c.linux.cgroupsPath = path;
      c.linux.resources.memory = { limit: 48 * 1024 * 1024 };
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== "cgroup");
    });
    expect(out).toMatch(new RegExp(`^\\d+:memory:${path}\n${48 * 1024 * 1024}\n$`));
    for (const c of ["memory", "pids", "freezer"]) expect(existsSync(`/sys/fs/cgroup/${c}${level}`)).toBe(false);
  });

  test("update changes the limits of a running container; events --stats reports them", async () => {
    const b = makeBundle(ctx, "upd");
    expect((await h.oci(["run", "-d", "--bundle", b, "upd"])).code).toBe(0);
    expect((await h.oci(["update", "--memory", "50m", "--pids-limit", "33", "upd"])).code).toBe(0);
    let ev = JSON.parse((await h.oci(["events", "--stats", "upd"])).stdout);
    expect(ev).toMatchObject({ type: "stats", id: "upd", data: { memory: { usage: { limit: 50 * 1024 * 1024 } }, pids: { limit: 33, current: 1 } } });
    const file = join(h.dir, "res.json");
    writeFileSync(file, JSON.stringify({ memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 44 } }));
    expect((await h.oci(["update", "--resources", file, "upd"])).code).toBe(0);
    ev = JSON.parse((await h.oci(["events", "--stats", "upd"])).stdout);
    expect(ev.data.memory.usage.limit).toBe(64 * 1024 * 1024);
    expect(ev.data.pids.limit).toBe(44);
    writeFileSync(file, JSON.stringify({ memory: { swappiness: 3 } }));
    const bad = await h.oci(["update", "--resources", file, "upd"]);
    expect([bad.code, bad.stderr]).toEqual([
      1,
      `nsbox: update --resources ${file}: memory.swappiness is not supported by update: recreate the container with it in config.json\n`,
    ]);
    expect((await h.oci(["delete", "-f", "upd"])).code).toBe(0);
  });
});
