/**
 * The security settings of a container as its processes see them
 * (/proc/self/status, mountinfo, what they can open and write): docker's
 * defaults (capabilities, no_new_privs off, a seccomp filter, masked and
 * read-only paths) and the flags that change them (--cap-add, --cap-drop,
 * --privileged, --security-opt), for `run` and for `exec`, and bad input.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ok, removeAll, runDetached } from "../helpers/lifecycle.ts";
import { addedLeftovers, isOneNsboxLine, lines, type RunResult, useNsbox } from "../helpers/nsbox.ts";
import { probeInto, removeProbes, runInside } from "../helpers/probes.ts";

const ctx = useNsbox("sec-flags");
ctx.beforeCleanup(() => removeAll(ctx));
ctx.beforeCleanup(removeProbes);

beforeAll(async () => {
  probeInto(ctx.rootfs, ["escape"]);
  // setuid root: run as another user, it shows whether the setuid bit still works
  probeInto(ctx.rootfs, ["euid"], 0o4755);
  // One good run first, so that the directories nsbox creates once are in every "before" snapshot.
  const r = await ctx.run(["--net", "none", ctx.rootfs, "true"]);
  if (r.code !== 0) throw new Error(`a plain run fails: ${r.stderr}`);
});

const E = "/probes/escape";

/** docker's 14 default capabilities (CHOWN ... AUDIT_WRITE) as a mask */
const DOCKER_CAPS = "00000000a80425fb";
const ZERO = "0000000000000000";
/** every capability this host's nsbox may hold: the bounding set of this test process */
const HOST_BND = (/^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "") as string;
const hex = (n: bigint) => n.toString(16).padStart(16, "0");
const bit = (n: number) => 1n << BigInt(n);
const CAP = { CHOWN: 0, NET_ADMIN: 12, SYS_ADMIN: 21 } as const;

/** `run --net none FLAGS ROOTFS sh -c SCRIPT`: stdout, which must come with exit 0. */
const inside = (script: string, flags: string[] = []) => runInside(ctx, script, flags);

/** "Key: value" lines of a status file as an object */
function fields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of lines(text)) {
    const i = l.indexOf(":");
    if (i > 0) out[l.slice(0, i)] = l.slice(i + 1).trim();
  }
  return out;
}

const SECURITY_FIELDS = /^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):/;
/** the capability, no_new_privs and seccomp lines of the process's /proc/self/status */
async function status(flags: string[] = []): Promise<Record<string, string>> {
  const all = fields(await inside("cat /proc/self/status", flags));
  return Object.fromEntries(Object.entries(all).filter(([k]) => SECURITY_FIELDS.test(`${k}:`)));
}

const caps = (eff: string, bnd = eff, prm = eff) => ({ CapInh: ZERO, CapPrm: prm, CapEff: eff, CapBnd: bnd, CapAmb: ZERO });

describe("capabilities", () => {
  test("default root: docker's 14 capabilities in the bounding, permitted and effective sets; inheritable and ambient empty; no_new_privs off; a seccomp filter", async () => {
    expect(await status()).toEqual({ ...caps(DOCKER_CAPS), NoNewPrivs: "0", Seccomp: "2" });
  });

  test("-u 1000: empty permitted and effective sets, docker's bounding set", async () => {
    expect(await status(["-u", "1000"])).toEqual({ ...caps(ZERO, DOCKER_CAPS), NoNewPrivs: "0", Seccomp: "2" });
  });

  test("--privileged: every capability of the host's bounding set, no seccomp", async () => {
    expect(HOST_BND).toMatch(/^[0-9a-f]{16}$/);
    expect(await status(["--privileged"])).toEqual({ ...caps(HOST_BND), NoNewPrivs: "0", Seccomp: "0" });
  });

  test("--cap-add SYS_ADMIN adds bit 21 to every set but the inheritable and ambient", async () => {
    const want = hex(BigInt(`0x${DOCKER_CAPS}`) | bit(CAP.SYS_ADMIN));
    expect(await status(["--cap-add", "SYS_ADMIN"])).toEqual({ ...caps(want), NoNewPrivs: "0", Seccomp: "2" });
  });

  test("--cap-drop ALL: every set empty", async () => {
    expect(await status(["--cap-drop", "ALL"])).toEqual({ ...caps(ZERO), NoNewPrivs: "0", Seccomp: "2" });
  });

  test("--cap-drop ALL --cap-add CHOWN: only CHOWN; --cap-add ALL: the host's bounding set, still filtered", async () => {
    expect(await status(["--cap-drop", "ALL", "--cap-add", "CHOWN"])).toEqual({ ...caps(hex(bit(CAP.CHOWN))), NoNewPrivs: "0", Seccomp: "2" });
    expect(await status(["--cap-add", "ALL"])).toEqual({ ...caps(HOST_BND), NoNewPrivs: "0", Seccomp: "2" });
  });

  test("--cap-drop CHOWN --cap-add NET_ADMIN, spelled with or without CAP_, in any case, repeated: the same sets", async () => {
    const want = hex((BigInt(`0x${DOCKER_CAPS}`) & ~bit(CAP.CHOWN)) | bit(CAP.NET_ADMIN));
    const spellings = [
      ["--cap-drop", "chown", "--cap-add", "cap_net_admin"],
      ["--cap-drop", "CAP_CHOWN", "--cap-add", "NET_ADMIN"],
      ["--cap-drop=Cap_Chown", "--cap-add=net_Admin"],
      ["--cap-drop", "chown", "--cap-drop", "CHOWN", "--cap-add", "NET_ADMIN", "--cap-add", "cap_net_admin"],
    ];
    for (const flags of spellings) expect([flags, (await status(flags)).CapEff]).toEqual([flags, want]);
  });

  test("the capabilities hold: CHOWN dropped makes chown fail; NET_ADMIN added lets ip link work in its own netns", async () => {
    const script = [
      "touch /tmp/f",
      "chown 1:1 /tmp/f 2>/dev/null && echo chown-ok || echo chown-refused",
      "ip link set lo down 2>/dev/null && echo netadmin-ok || echo netadmin-refused",
    ].join("; ");
    expect(lines(await inside(script, ["--cap-drop", "chown", "--cap-add", "net_admin"]))).toEqual(["chown-refused", "netadmin-ok"]);
    expect(lines(await inside(script))).toEqual(["chown-ok", "netadmin-refused"]);
  });
});

describe("no_new_privs and setuid programs", () => {
  test("by default a setuid-root program run by uid 1000 gets euid 0 (as docker)", async () => {
    expect(await inside("/probes/euid", ["-u", "1000"])).toBe("uid=1000 euid=0\n");
  });

  test("--security-opt no-new-privileges (and =true): NoNewPrivs 1, the setuid bit is ignored", async () => {
    for (const opt of ["no-new-privileges", "no-new-privileges=true"]) {
      expect([opt, (await status(["--security-opt", opt])).NoNewPrivs]).toEqual([opt, "1"]);
      expect([opt, await inside("/probes/euid", ["-u", "1000", "--security-opt", opt])]).toEqual([opt, "uid=1000 euid=1000\n"]);
    }
  });
});

describe("seccomp", () => {
  test("seccomp=unconfined: Seccomp 0 and the capabilities unchanged", async () => {
    expect(await status(["--security-opt", "seccomp=unconfined"])).toEqual({ ...caps(DOCKER_CAPS), NoNewPrivs: "0", Seccomp: "0" });
  });

  test("the default filter refuses what docker's refuses (keyctl EPERM) and seccomp=unconfined lets it reach the kernel", async () => {
    expect(await inside(`${E} keyctl`)).toBe("keyctl: EPERM\n");
    expect(await inside(`${E} keyctl`, ["--security-opt", "seccomp=unconfined"])).toBe("keyctl: EOPNOTSUPP\n");
  });

  test("seccomp=PROFILE.json (docker's format): mkdir answers the profile's errno, everything else works", async () => {
    const profile = join(ctx.tmp, "no-mkdir.json");
    writeFileSync(
      profile,
      JSON.stringify({
        defaultAction: "SCMP_ACT_ALLOW",
        architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        syscalls: [
          { names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 13 },
          { names: ["rmdir"], action: "SCMP_ACT_ERRNO" },
        ],
      }),
    );
    const out = await inside("grep ^Seccomp: /proc/self/status; mkdir /tmp/d 2>&1; touch /tmp/f && echo touch-ok; rmdir /tmp 2>&1; echo done", [
      "--security-opt",
      `seccomp=${profile}`,
    ]);
    expect(lines(out)).toEqual([
      "Seccomp:\t2",
      expect.stringContaining("Permission denied"),
      "touch-ok",
      expect.stringContaining("Operation not permitted"),
      "done",
    ]);
    // the custom profile replaces docker's: keyctl is allowed by its defaultAction
    expect(await inside(`${E} keyctl`, ["--security-opt", `seccomp=${profile}`])).toBe("keyctl: EOPNOTSUPP\n");
  });
});

/** mountinfo lines inside, as mount point -> per-mount options */
async function mountOptions(flags: string[] = []): Promise<Map<string, string>> {
  const out = await inside("cat /proc/self/mountinfo", flags);
  const m = new Map<string, string>();
  for (const l of lines(out)) {
    const f = l.split(" ");
    m.set(f[4] as string, f[5] as string);
  }
  return m;
}

describe("masked and read-only paths", () => {
  const MASKED_FILES = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/interrupts", "/proc/latency_stats", "/proc/timer_stats"];
  const MASKED_DIRS = ["/proc/scsi", "/proc/acpi", "/proc/asound", "/sys/firmware", "/sys/devices/virtual/powercap"];
  const READ_ONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];
  // paths this kernel lacks are skipped by nsbox: only the host's are checked
  const files = MASKED_FILES.filter((p) => existsSync(p));
  const dirs = MASKED_DIRS.filter((p) => existsSync(p));
  const ro = READ_ONLY.filter((p) => existsSync(p));

  test("masked files read empty, masked directories are empty and read-only; each is a mount inside", async () => {
    const script = [
      ...files.map((f) => `echo "${f} $(cat ${f} 2>/dev/null | wc -c)"`),
      ...dirs.map((d) => `echo "${d} $(ls -A ${d} 2>/dev/null | wc -l)"`),
    ].join("; ");
    const out = await inside(script);
    expect(lines(out)).toEqual([...files, ...dirs].map((p) => `${p} 0`));
    const mounts = await mountOptions();
    for (const p of [...files, ...dirs]) expect([p, mounts.has(p)]).toEqual([p, true]);
    // directories: an empty read-only tmpfs
    for (const d of dirs) expect([d, mounts.get(d)?.split(",")[0]]).toEqual([d, "ro"]);
    // they exist inside as on the host (masked, not removed)
    expect(lines(await inside([...files, ...dirs].map((p) => `test -e ${p} && echo ${p}`).join("; ")))).toEqual([...files, ...dirs]);
  });

  test("/proc/bus, /proc/fs, /proc/irq, /proc/sys, /proc/sysrq-trigger are read-only mounts; a namespaced sysctl cannot be written", async () => {
    const mounts = await mountOptions();
    for (const p of ro) expect([p, mounts.get(p)?.split(",")[0]]).toEqual([p, "ro"]);
    // kernel.hostname belongs to the container's uts namespace: harmless to write back
    expect(await inside(`${E} write-back /proc/sys/kernel/hostname`)).toMatch(/^\/proc\/sys\/kernel\/hostname: (EROFS|EACCES)\n$/);
  });

  test("/sys is read-only by default, read-write with --privileged", async () => {
    expect((await mountOptions()).get("/sys")?.split(",")[0]).toBe("ro");
    expect((await mountOptions(["--privileged"])).get("/sys")?.split(",")[0]).toBe("rw");
  });

  for (const flags of [["--security-opt", "systempaths=unconfined"], ["--privileged"]])
    test(`${flags.join(" ")}: nothing masked or read-only`, async () => {
      const mounts = await mountOptions(flags);
      for (const p of [...files, ...dirs, ...ro]) expect([p, mounts.has(p)]).toEqual([p, false]);
      if (existsSync("/proc/timer_list")) expect(Number((await inside("cat /proc/timer_list | wc -c", flags)).trim())).toBeGreaterThan(0);
      expect(await inside(`${E} write-back /proc/sys/kernel/hostname`, flags)).toBe("/proc/sys/kernel/hostname: ok\n");
    });
});

describe("exec: the same settings as the container's process", () => {
  /** the security lines of /proc/PID/status as `exec` sees them ("self": the exec'd process) */
  async function execStatus(id: string, pid: string, flags: string[] = []): Promise<Record<string, string>> {
    const r = await ok(ctx, ["exec", ...flags, id, "cat", `/proc/${pid}/status`]);
    return Object.fromEntries(Object.entries(fields(r.stdout)).filter(([k]) => SECURITY_FIELDS.test(`${k}:`)));
  }

  test("default: exec'd processes hold the same capability sets, no_new_privs and seccomp mode as PID 1", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    try {
      const pid1 = await execStatus(id, "1");
      expect(pid1).toEqual({ ...caps(DOCKER_CAPS), NoNewPrivs: "0", Seccomp: "2" });
      expect(await execStatus(id, "self")).toEqual(pid1);
      expect(await execStatus(id, "self", ["-u", "1000"])).toEqual({ ...caps(ZERO, DOCKER_CAPS), NoNewPrivs: "0", Seccomp: "2" });
      expect(await execStatus(id, "self", ["--privileged"])).toEqual({ ...caps(HOST_BND), NoNewPrivs: "0", Seccomp: "0" });
      // keyctl: refused to an exec'd process as to PID 1 (the filter is there, not only the mode)
      expect((await ok(ctx, ["exec", id, E, "keyctl"])).stdout).toBe("keyctl: EPERM\n");
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  });

  test("exec reads the filter run cached, by the key the container records; without it, it falls back to the container's profile", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    try {
      const config = JSON.parse(readFileSync(join(ctx.stateRoot, id, "config.json"), "utf8"));
      const key = config.spec.nsbox.seccompKey as string;
      // docker's default profile: named by what it is valid for (a user's profile: a hash)
      expect(key).toMatch(/^default-[\w.+-]+$/);
      const bpf = join(ctx.stateRoot, "seccomp", `${key}.bpf`);
      // the raw program: 8-byte instructions
      expect(readFileSync(bpf).length % 8).toBe(0);
      expect((await ok(ctx, ["exec", id, E, "keyctl"])).stdout).toBe("keyctl: EPERM\n");
      // a cached filter that is not a program (cut short) is not used: the profile's filter is found again
      writeFileSync(bpf, "short");
      expect((await ok(ctx, ["exec", id, E, "keyctl"])).stdout).toBe("keyctl: EPERM\n");
      // the whole cache gone (it lives in the state root)
      rmSync(join(ctx.stateRoot, "seccomp"), { recursive: true, force: true });
      expect((await ok(ctx, ["exec", id, E, "keyctl"])).stdout).toBe("keyctl: EPERM\n");
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  });

  test("--cap-drop ALL --cap-add KILL --security-opt no-new-privileges: exec inherits them", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"], ["--cap-drop", "ALL", "--cap-add", "KILL", "--security-opt", "no-new-privileges"]);
    try {
      const want = { ...caps(hex(bit(5))), NoNewPrivs: "1", Seccomp: "2" };
      expect(await execStatus(id, "1")).toEqual(want);
      expect(await execStatus(id, "self")).toEqual(want);
      expect((await ok(ctx, ["exec", "-u", "1000", id, "/probes/euid"])).stdout).toBe("uid=1000 euid=1000\n");
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  });

  test("seccomp=unconfined: exec'd processes are unconfined too", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"], ["--security-opt", "seccomp=unconfined"]);
    try {
      expect((await execStatus(id, "self")).Seccomp).toBe("0");
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  });

  test("inspect shows the capabilities and the seccomp setting", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    try {
      const out = (await ok(ctx, ["inspect", id])).stdout;
      expect(out).toContain("CAP_CHOWN");
      expect(out.toLowerCase()).toContain("seccomp");
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  });
});

describe("pods, --net container: and the shims", () => {
  /** the security lines of the process's own status, run with `run FLAGS` (no --net: members take their pod's or container's) */
  async function memberStatus(flags: string[]): Promise<Record<string, string>> {
    const r = await ctx.run([...flags, ctx.rootfs, "cat", "/proc/self/status"]);
    if (r.code !== 0) throw new Error(`run ${flags.join(" ")}: exit ${r.code}; ${r.stderr}`);
    return Object.fromEntries(Object.entries(fields(r.stdout)).filter(([k]) => SECURITY_FIELDS.test(`${k}:`)));
  }

  test("a pod's members get their own settings; the pause process holds no capability", async () => {
    const pod = (await ok(ctx, ["pod", "create", "--net", "none", "--share", "net,ipc,uts,pid", "--name", "sec-pod"])).stdout.trim();
    try {
      expect(await memberStatus(["--pod", "sec-pod"])).toEqual({ ...caps(DOCKER_CAPS), NoNewPrivs: "0", Seccomp: "2" });
      expect(await memberStatus(["--pod", "sec-pod", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"])).toEqual({
        ...caps(ZERO),
        NoNewPrivs: "1",
        Seccomp: "2",
      });
      expect(await memberStatus(["--pod", "sec-pod", "--privileged"])).toEqual({ ...caps(HOST_BND), NoNewPrivs: "0", Seccomp: "0" });
      const infra = JSON.parse((await ok(ctx, ["pod", "inspect", pod])).stdout) as { InfraPid: number }[];
      const pause = fields(readFileSync(`/proc/${infra[0]?.InfraPid}/status`, "utf8"));
      expect({ CapEff: pause.CapEff, CapPrm: pause.CapPrm, CapBnd: pause.CapBnd }).toEqual({ CapEff: ZERO, CapPrm: ZERO, CapBnd: ZERO });
    } finally {
      await ctx.nsbox(["pod", "rm", "-f", pod]);
    }
  });

  test("--net container:ID members get their own settings", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"], ["--cap-add", "NET_ADMIN"]);
    try {
      expect(await memberStatus(["--net", `container:${id}`])).toEqual({ ...caps(DOCKER_CAPS), NoNewPrivs: "0", Seccomp: "2" });
      expect((await memberStatus(["--net", `container:${id}`, "--cap-drop", "ALL"])).CapEff).toBe(ZERO);
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  });

  test("the monitor shim of a detached container gives up capabilities it has no use for (module loading, raw I/O, reboot, clock, syslog)", async () => {
    const id = await runDetached(ctx, ["sleep", "1000"]);
    try {
      const info = JSON.parse((await ok(ctx, ["inspect", id])).stdout) as { State: { MonitorPid: number } }[];
      const monitor = fields(readFileSync(`/proc/${info[0]?.State.MonitorPid}/status`, "utf8"));
      const eff = BigInt(`0x${monitor.CapEff}`);
      // CAP_SYS_MODULE 16, CAP_SYS_RAWIO 17, CAP_SYS_BOOT 22, CAP_SYS_TIME 25, CAP_SYSLOG 34
      expect([16, 17, 22, 25, 34].filter((c) => (eff & bit(c)) !== 0n)).toEqual([]);
    } finally {
      await ctx.nsbox(["rm", "-f", id]);
    }
  });
});

describe("--security-opt label and apparmor", () => {
  test("label=... and apparmor=... are accepted (this host enforces neither): the container runs", async () => {
    for (const opt of ["label=disable", "apparmor=unconfined"]) {
      const r = await ctx.run(["--net", "none", "--security-opt", opt, ctx.rootfs, "echo", "ran"]);
      expect([opt, r.code, r.stdout]).toEqual([opt, 0, "ran\n"]);
      // at most a one-line note
      expect(lines(r.stderr).length).toBeLessThanOrEqual(1);
    }
  });
});

describe("bad input: one line, exit 125, nothing created", () => {
  async function expectError(flags: string[], mention: string | RegExp): Promise<RunResult> {
    const before = ctx.leftovers();
    const r = await ctx.run(["--net", "none", ...flags, ctx.rootfs, "true"]);
    const left = await addedLeftovers(before, ctx.leftovers);
    expect({ flags, code: r.code, stdout: r.stdout, oneLine: isOneNsboxLine(r.stderr), mention: r.stderr, left }).toEqual({
      flags,
      code: 125,
      stdout: "",
      oneLine: true,
      mention: expect.stringMatching(mention),
      left: {},
    });
    return r;
  }

  test("an unknown capability is named", async () => {
    await expectError(["--cap-add", "CAP_NO_SUCH_THING"], /NO_SUCH_THING/i);
    await expectError(["--cap-drop", "bogus"], /bogus/i);
  });

  test("an unknown --security-opt", async () => {
    await expectError(["--security-opt", "frobnicate=yes"], "frobnicate");
    await expectError(["--security-opt", "no-new-privileges=maybe"], "maybe");
  });

  test("a seccomp profile that is missing, not JSON, or has an unknown action", async () => {
    await expectError(["--security-opt", `seccomp=${join(ctx.tmp, "no-such-profile.json")}`], "no-such-profile.json");
    const notJson = join(ctx.tmp, "not-json.json");
    writeFileSync(notJson, "this is { not json\n");
    await expectError(["--security-opt", `seccomp=${notJson}`], "not-json.json");
    const badAction = join(ctx.tmp, "bad-action.json");
    writeFileSync(badAction, JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_FROBNICATE" }] }));
    await expectError(["--security-opt", `seccomp=${badAction}`], "SCMP_ACT_FROBNICATE");
  });
});
