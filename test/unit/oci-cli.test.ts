/**
 * The pure parts of the OCI runtime: which command lines are runc's, systemd
 * cgroupsPath mapping, signal names, events' --interval, and config.json -> ContainerSpec.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, parseConfig } from "../../src/oci/config.ts";
import { cgroupPath } from "../../src/oci/create.ts";
import { isOciCommandLine } from "../../src/oci/dispatch.ts";
import { parseInterval, v2Oom } from "../../src/oci/events.ts";
import { signalNumber } from "../../src/oci/lifecycle.ts";
import { removeTempDirs, tempDir } from "../helpers/tmp.ts";

afterAll(removeTempDirs);

describe("dispatch", () => {
  const oci = (argv: string[], as = "nsbox") => isOciCommandLine(argv, as);
  test("runc's command lines", () => {
    // podman (conmon) and containerd's shim
    expect(oci(["--root", "/run/x", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/p", "id"])).toBe(true);
    expect(oci(["--root", "/run/x", "--log", "/l", "--log-format", "json", "kill", "id", "9"])).toBe(true);
    expect(oci(["--systemd-cgroup", "--root", "/r", "start", "id"])).toBe(true);
    // runtime-tools: plain verbs
    for (const v of ["create", "start", "state", "delete", "list", "ls", "spec", "features", "pause", "resume", "update", "events"])
      expect(oci([v, "x"])).toBe(true);
    expect(oci(["run", "--bundle", "/b", "id"])).toBe(true);
    expect(oci(["run", "-b", "/b", "-d", "id"])).toBe(true);
    expect(oci(["exec", "--process", "/p.json", "--detach", "id"])).toBe(true);
    expect(oci(["--log=/l", "exec", "id", "sh"])).toBe(true);
    // invoked as runc: always
    expect(oci(["run", "rootfs", "sh"], "runc")).toBe(true);
    expect(oci(["ps", "id"], "nsbox-runc")).toBe(true);
  });
  test("nsbox's own command lines stay nsbox's", () => {
    expect(oci(["run", "/rootfs", "sh", "-c", "echo --bundle"])).toBe(false);
    expect(oci(["run", "-it", "--rm", "alpine", "sh"])).toBe(false);
    expect(oci(["--root", "/data", "run", "/rootfs", "true"])).toBe(false);
    expect(oci(["exec", "abc", "ls", "--process"])).toBe(false);
    expect(oci(["run", "-p", "8080:80", "-d", "/rootfs", "httpd"])).toBe(false);
    expect(oci(["run", "--publish=1:2", "-v", "/a:/b", "/rootfs", "sh"])).toBe(false);
    expect(oci(["exec", "-e", "A=1", "-it", "abc", "sh"])).toBe(false);
    expect(oci(["run", "-e", "A=1", "/rootfs", "sh", "-c", "x --bundle y"])).toBe(false);
    expect(oci(["ps", "-a"])).toBe(false);
    expect(oci(["kill", "no-such-oci-container-here"])).toBe(false);
    expect(oci(["--version"])).toBe(false);
    expect(oci([])).toBe(false);
  });
});

describe("cgroupsPath", () => {
  test("systemd's slice:prefix:name maps onto cgroupfs as runc does without systemd", () => {
    expect(cgroupPath("machine.slice:libpod:abc")).toBe("/machine.slice/libpod-abc.scope");
    expect(cgroupPath("system-foo.slice:cri:x")).toBe("/system.slice/system-foo.slice/cri-x.scope");
    expect(cgroupPath(":runc:x")).toBe("/system.slice/runc-x.scope");
    expect(cgroupPath("/a/b")).toBe("/a/b");
    expect(cgroupPath("a/b")).toBe("/a/b");
    expect(cgroupPath(undefined)).toBeUndefined();
  });
});

describe("signals", () => {
  test("names with and without SIG, numbers, default TERM", () => {
    expect([signalNumber("KILL"), signalNumber("SIGKILL"), signalNumber("kill"), signalNumber("9"), signalNumber(undefined)]).toEqual([9, 9, 9, 9, 15]);
    expect(() => signalNumber("NOPE")).toThrow(ConfigError);
    expect(() => signalNumber("99")).toThrow(ConfigError);
  });
});

describe("config.json", () => {
  const dir = tempDir("nsbox-oci-unit-");
  const base = () => ({
    ociVersion: "1.0.2",
    process: { args: ["sh"], cwd: "/", user: { uid: 0, gid: 0 } },
    root: { path: "/" },
    linux: { namespaces: [{ type: "pid" }, { type: "mount" }, { type: "uts" }] },
  });
  test("maps onto ContainerSpec: the rootfs as is, no init, default devices, runc's allowed devices", () => {
    const c = { ...base(), hostname: "h", linux: { ...base().linux, resources: { devices: [{ allow: false, access: "rwm" }] } } };
    const b = parseConfig(c, dir);
    expect(b.spec.nsbox).toMatchObject({ overlay: false, init: false });
    expect(b.spec.root).toEqual({ path: "/", readonly: false });
    expect(b.spec.linux.devices.map((d) => d.path)).toEqual(["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]);
    expect(b.spec.linux.resources?.devices?.[0]).toEqual({ allow: false, type: "a", major: undefined, minor: undefined, access: "rwm" });
    expect(b.spec.linux.resources?.devices?.some((d) => d.allow && d.major === 136)).toBe(true);
    // absent capabilities: none, as runc
    expect(b.spec.process.capabilities).toEqual({ bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] });
  });
  test("refusals name the field", () => {
    const cases: [(c: ReturnType<typeof base> & Record<string, unknown>) => void, RegExp][] = [
      [(c) => (c.ociVersion = "1.3.0"), /ociVersion "1\.3\.0" is not supported/],
      [(c) => (c.process.cwd = "rel"), /process\.cwd "rel" must be an absolute path/],
      [(c) => (c.hostname = "x") && (c.linux.namespaces = [{ type: "pid" }]), /hostname needs a new uts namespace/],
      [(c) => c.linux.namespaces.push({ type: "pid" }), /lists the pid namespace twice/],
      [(c) => c.linux.namespaces.push({ type: "bogus" }), /"bogus" is not a namespace type/],
      [(c) => ((c.process as Record<string, unknown>).rlimits = [{ type: "RLIMIT_NOFILE", soft: 10, hard: 5 }]), /soft 10 is above hard 5/],
      [(c) => (c.hooks = { prestart: [{ path: "rel" }] }), /hooks\.prestart\[0\]\.path "rel" must be an absolute path/],
      [(c) => (c.hooks = { onboot: [] }), /hooks\.onboot is not a hook kind/],
      [(c) => (c.windows = { layerFolders: [] }), /windows is for another platform/],
    ];
    for (const [edit, want] of cases) {
      const c = base() as ReturnType<typeof base> & Record<string, unknown>;
      edit(c);
      expect(() => parseConfig(c, dir)).toThrow(want);
    }
  });
  test("what runc and crun accept and ignore: unknown capabilities, data words on binds, kernel memory", () => {
    const c = base() as ReturnType<typeof base> & Record<string, unknown>;
    (c.process as Record<string, unknown>).capabilities = { bounding: ["CAP_NOPE", "CAP_CHOWN"] };
    c.mounts = [{ destination: "/mnt", type: "bind", source: dir, options: ["rbind", "mode=755", "rshared"] }];
    (c.linux as Record<string, unknown>).resources = {
      memory: { limit: 50593792, kernel: 50593792, kernelTCP: 50593792, swappiness: 10, disableOOMKiller: true },
      hugepageLimits: [{ pageSize: "2MB", limit: 1 }],
    };
    (c.linux as Record<string, unknown>).devices = [{ path: "/dev/fifo", type: "p", major: 8, minor: 1 }];
    const b = parseConfig(c, dir);
    expect(b.spec.process.capabilities?.bounding).toEqual(["CAP_CHOWN"]);
    expect(b.spec.mounts[0]?.options).toEqual(["rbind", "rshared"]);
    expect(b.spec.linux.resources?.memory?.limit).toBe(50593792);
    expect(b.v1Files?.map((f) => `${f.file}=${f.value}`)).toEqual(["memory.kmem.tcp.limit_in_bytes=50593792", "memory.swappiness=10", "memory.oom_control=1"]);
    const fifo = b.spec.linux.devices.find((d) => d.path === "/dev/fifo");
    expect(fifo).toMatchObject({ type: "p", major: 0, minor: 0 });
    // a FIFO needs no device-cgroup rule
    expect(b.spec.linux.resources?.devices ?? []).not.toContainEqual(expect.objectContaining({ major: 8, minor: 1 }));
  });
});

describe("events --interval", () => {
  test("runc's durations; 0 and words are refused", () => {
    expect([parseInterval(undefined), parseInterval("500ms"), parseInterval("2s"), parseInterval("1m"), parseInterval("3")]).toEqual([
      5000, 500, 2000, 60000, 3000,
    ]);
    for (const bad of ["0s", "0", "fast", "1h", "-1s", ""]) expect(() => parseInterval(bad)).toThrow(ConfigError);
  });
});

describe("events: the OOM count on cgroup v2", () => {
  test("kills since the last look, from memory.events' oom_kill; none once the cgroup is gone", () => {
    const dir = tempDir("nsbox-oomv2-");
    const file = join(dir, "memory.events");
    const write = (kills: number) => writeFileSync(file, `low 0\nhigh 0\nmax 9\noom 4\noom_kill ${kills}\noom_group_kill 0\n`);
    write(3); // before events started: not reported
    const src = v2Oom(dir);
    expect(src.take()).toBe(0);
    write(4);
    expect([src.take(), src.take()]).toEqual([1, 0]);
    write(6);
    expect(src.take()).toBe(2);
    rmSync(file);
    expect(src.take()).toBe(0);
  });
});
