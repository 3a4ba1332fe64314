/**
 * Bad input to the OCI runtime: one line on stderr naming the problem, the same
 * message as a JSON line in --log with --log-format json (podman shows its msg
 * to the user), exit code 1 as runc, and nothing left behind.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useNsbox } from "../helpers/nsbox.ts";
import { cgroupDirsOf, makeBundle, ociHarness } from "../helpers/oci.ts";

const ctx = useNsbox("ocierr");
const h = ociHarness(ctx);

/** create with --log/--log-format json; checks the common shape of a refusal and returns the message. */
async function refused(bundle: string, id: string, extra: string[] = []): Promise<string> {
  const logFile = join(h.dir, `${id}.log`);
  const r = await h.oci(["create", "--bundle", bundle, ...extra, id], { before: ["--log", logFile, "--log-format", "json"] });
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(/^nsbox: [^\n]+\n$/);
  const msg = r.stderr.slice("nsbox: ".length, -1);
  const entries = readFileSync(logFile, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  expect(entries.at(-1)).toMatchObject({ level: "error", msg });
  expect(Number.isNaN(Date.parse(entries.at(-1).time))).toBe(false);
  // nothing left: no state dir, no cgroup
  expect(existsSync(join(h.root, id))).toBe(false);
  expect(cgroupDirsOf(id)).toEqual([]);
  return msg;
}

function rawBundle(name: string, config: string | undefined): string {
  const b = join(h.dir, "raw", name);
  mkdirSync(b, { recursive: true });
  if (config !== undefined) writeFileSync(join(b, "config.json"), config);
  return b;
}

describe("bad bundles", () => {
  test("no config.json", async () => {
    const b = rawBundle("empty", undefined);
    expect(await refused(b, "e1")).toBe(`bundle ${b} has no config.json: create one (nsbox spec --bundle ${b}) or give the right --bundle`);
  });

  test("a bundle that is not a directory", async () => {
    expect(await refused(join(h.dir, "nowhere"), "e2")).toContain("is not a directory");
  });

  test("config.json that is not JSON says where", async () => {
    const b = rawBundle("notjson", '{"ociVersion": "1.0.2",\n  "process": }');
    expect(await refused(b, "e3")).toMatch(/config\.json is not valid JSON \(line 2, column \d+\)/);
  });

  test("missing required fields are named", async () => {
    const noProcess = makeBundle(ctx, "noproc", (c) => {
      delete c.process;
    });
    expect(await refused(noProcess, "e4")).toBe("config.json: process is missing (it says what to run)");
    const noArgs = makeBundle(ctx, "noargs", (c) => {
      c.process.args = [];
    });
    expect(await refused(noArgs, "e5")).toBe("config.json: process.args is missing or empty: say what to run");
    const noVersion = makeBundle(ctx, "novers", (c) => {
      delete c.ociVersion;
    });
    expect(await refused(noVersion, "e6")).toContain("config.json: ociVersion is missing");
    const badUid = makeBundle(ctx, "baduid", (c) => {
      c.process.user.uid = "root";
    });
    expect(await refused(badUid, "e7")).toContain("process.user.uid must be an integer");
  });

  test("an unsupported ociVersion", async () => {
    const b = makeBundle(ctx, "v2", (c) => {
      c.ociVersion = "2.0.0";
    });
    expect(await refused(b, "e8")).toBe('config.json: ociVersion "2.0.0" is not supported: nsbox follows runtime-spec 1.0.x to 1.2.x');
    // 1.0.x and 1.1.x are accepted
    for (const [v, id] of [
      ["1.0.2-dev", "v10"],
      ["1.1.0", "v11"],
    ] as const) {
      const ok = makeBundle(ctx, id, (c) => {
        c.ociVersion = v;
      });
      expect((await h.oci(["create", "--bundle", ok, id])).code).toBe(0);
      expect((await h.oci(["delete", "--force", id])).code).toBe(0);
    }
  });

  test("a root.path that does not exist", async () => {
    const b = makeBundle(ctx, "noroot", (c) => {
      c.root.path = "missing-rootfs";
    });
    expect(await refused(b, "e9")).toBe(
      `config.json: root.path ${join(b, "missing-rootfs")} is not a directory: unpack the root filesystem there or fix root.path`,
    );
  });

  test("fields nsbox cannot honour are refused by name, never ignored", async () => {
    const cases: [string, (c: ReturnType<typeof JSON.parse>) => void, string][] = [
      ["rdt", (c) => (c.linux.intelRdt = { closID: "x" }), "config.json: linux.intelRdt is not supported by nsbox"],
      ["timens", (c) => (c.linux.timeOffsets = { boottime: { secs: 1 } }), "linux.timeOffsets needs a new time namespace"],
      [
        "idmap",
        (c) => c.mounts.push({ destination: "/x", type: "bind", source: "/tmp", options: ["rbind"], uidMappings: [{ containerID: 0, hostID: 1, size: 1 }] }),
        "config.json: mounts[7] the idmapped mount of /x needs both uidMappings and gidMappings",
      ],
      [
        "idmapns",
        (c) => c.mounts.push({ destination: "/x", type: "bind", source: "/tmp", options: ["rbind", "idmap"] }),
        "mounts[7].options idmap without uidMappings/gidMappings takes the container's user namespace mappings, and there is no user namespace",
      ],
      [
        "idmaptmpfs",
        (c) => c.mounts.push({ destination: "/x", type: "tmpfs", source: "tmpfs", options: ["ridmap"] }),
        "the idmapped mount of /x must be a bind mount",
      ],
      [
        "bindopt",
        (c) => c.mounts.push({ destination: "/x", type: "bind", source: "/tmp", options: ["rbind", "rro"] }),
        'mounts[7].options "rro" on the bind mount of /x',
      ],
      ["net", (c) => (c.linux.resources.network = { classID: 1 }), "linux.resources.network is not supported"],
      ["oom", (c) => (c.linux.resources.memory = { useHierarchy: true }), "linux.resources.memory.useHierarchy is not supported"],
      ["prop", (c) => (c.linux.rootfsPropagation = "sideways"), 'linux.rootfsPropagation "sideways" must be one of'],
      ["sched", (c) => (c.process.scheduler = { policy: "SCHED_FIFO" }), "process.scheduler is not supported"],
    ];
    for (const [id, edit, want] of cases) {
      const b = makeBundle(ctx, id, edit);
      expect(await refused(b, id)).toContain(want);
    }
  });

  test("a console socket nobody listens on: the process made meanwhile goes too", async () => {
    const b = makeBundle(ctx, "nosock", (c) => {
      c.process.terminal = true;
    });
    const sock = join(h.dir, "nobody.sock");
    expect(await refused(b, "nosock", ["--console-socket", sock])).toBe(`cannot connect to the console socket ${sock}: no such file or directory`);
  });

  test("a command that does not exist fails create, not start", async () => {
    const b = makeBundle(ctx, "nocmd", (c) => {
      c.process.args = ["/no/such/program"];
    });
    expect(await refused(b, "nocmd")).toContain("/no/such/program");
  });
});

describe("bad requests", () => {
  test("an id already in use is refused and the existing container is untouched", async () => {
    const b = makeBundle(ctx, "dup");
    expect((await h.oci(["create", "--bundle", b, "dup"])).code).toBe(0);
    const logFile = join(h.dir, "dup.log");
    const r = await h.oci(["create", "--bundle", b, "dup"], { before: ["--log", logFile, "--log-format", "json"] });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('nsbox: container "dup" already exists: choose another id, or delete it (delete --force dup)\n');
    expect(JSON.parse(readFileSync(logFile, "utf8")).msg).toBe('container "dup" already exists: choose another id, or delete it (delete --force dup)');
    expect(JSON.parse((await h.oci(["state", "dup"])).stdout).status).toBe("created");
    expect((await h.oci(["delete", "dup"])).code).toBe(0);
  });

  test("invalid ids, unknown containers, unknown flags", async () => {
    const b = makeBundle(ctx, "ids");
    const bad = await h.oci(["create", "--bundle", b, "../x"]);
    expect([bad.code, bad.stderr]).toEqual([1, 'nsbox: invalid container id "../x": use letters, digits, _ + - and .\n']);
    for (const verb of ["start", "state", "pause", "resume", "delete"]) {
      const r = await h.oci([verb, "ghost"]);
      expect([verb, r.code, r.stderr]).toEqual([verb, 1, 'nsbox: container "ghost" does not exist\n']);
    }
    // `--root X kill ID` is runc's only if ID is a container of X (else it is nsbox's own kill); --log says runc's
    const kill = await h.oci(["kill", "ghost"], { before: ["--log", join(h.dir, "kill.log")] });
    expect([kill.code, kill.stderr]).toEqual([1, 'nsbox: container "ghost" does not exist\n']);
    const flag = await h.oci(["create", "--bogus", "x"]);
    expect([flag.code, flag.stderr]).toEqual([1, "nsbox: flag provided but not defined: --bogus\n"]);
    expect(readdirSync(h.root)).toEqual([]);
  });

  test("start of a stopped container; --log-format text", async () => {
    const b = makeBundle(ctx, "stopped", (c) => {
      c.process.args = ["true"];
    });
    expect((await h.oci(["run", "-d", "--bundle", b, "stopped"])).code).toBe(0);
    for (let i = 0; i < 200 && JSON.parse((await h.oci(["state", "stopped"])).stdout).status !== "stopped"; i++) await Bun.sleep(25);
    const logFile = join(h.dir, "text.log");
    const r = await h.oci(["start", "stopped"], { before: ["--log", logFile, "--log-format", "text"] });
    expect([r.code, r.stderr]).toEqual([1, "nsbox: cannot start container stopped: it is stopped, not created\n"]);
    expect(readFileSync(logFile, "utf8")).toMatch(/^time="[^"]+" level=error msg="cannot start container stopped: it is stopped, not created"\n$/);
    expect((await h.oci(["delete", "stopped"])).code).toBe(0);
  });
});
