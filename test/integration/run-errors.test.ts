/**
 * `nsbox run` with bad input: one line on stderr starting with "nsbox: ", exit
 * 125 (126/127 for the command), and nothing left behind on the host (mounts,
 * layers, state, cgroups, half-extracted tarballs), including when the failure
 * happens inside the container process after clone.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { addedLeftovers, isOneNsboxLine, type Leftovers, NSBOX, type RunOptions, type RunResult, useNsbox } from "../helpers/nsbox.ts";
import { underReaplessPid1 } from "../helpers/proc.ts";

const ctx = useNsbox("errors");

beforeAll(async () => {
  // One good run first, so that the directories nsbox creates once (containers/,
  // names/) are in every "before" snapshot.
  const r = await ctx.run([ctx.rootfs, "true"]);
  if (r.code !== 0) throw new Error(`a plain run fails: ${r.stderr}`);
});

/** Runs nsbox with args; checks the exit code, the one-line message and that nothing was left. */
async function expectError(args: string[], code: number, mention?: string | RegExp, opts?: RunOptions): Promise<RunResult> {
  const before: Leftovers = ctx.leftovers();
  const r = await ctx.nsbox(args, opts);
  const left = await addedLeftovers(before, ctx.leftovers);
  // one comparison, so that a failure shows everything that is wrong at once
  expect({ code: r.code, timedOut: r.timedOut, stdout: r.stdout, stderr: r.stderr, mention: r.stderr, left }).toEqual({
    code,
    timedOut: false,
    stdout: "",
    stderr: expect.stringMatching(/^nsbox: [^\n]*\n?$/),
    mention: mention === undefined ? expect.anything() : expect.stringMatching(mention),
    left: {},
  });
  expect(isOneNsboxLine(r.stderr)).toBe(true);
  return r;
}

describe("bad rootfs", () => {
  test("missing rootfs path", async () => {
    await expectError(["run", join(ctx.tmp, "no-such-rootfs"), "sh"], 125, "no-such-rootfs");
  });

  test("empty rootfs directory", async () => {
    const empty = ctx.mkdir("empty-rootfs");
    await expectError(["run", empty, "sh"], 125, /empty/);
  });

  test("a file that is not a tarball nsbox knows (.txt)", async () => {
    const f = join(ctx.tmp, "notes.txt");
    writeFileSync(f, "not a rootfs\n");
    await expectError(["run", f, "sh"], 125, "notes.txt");
  });

  test("a .tar file that is not a tar archive: one line, no half-extracted tree", async () => {
    const f = join(ctx.tmp, "garbage.tar");
    writeFileSync(f, "this is not a tar archive\n".repeat(100));
    await expectError(["run", f, "sh"], 125, "garbage.tar");
  });

  test("a .tar.gz that is not gzip", async () => {
    const f = join(ctx.tmp, "garbage.tar.gz");
    writeFileSync(f, "plain text, not gzip\n");
    await expectError(["run", f, "sh"], 125, "garbage.tar.gz");
  });

  test("the host's / as rootfs is refused", async () => {
    await expectError(["run", "/", "true"], 125, "/");
  });

  test("a rootfs without the command: 127, the message names it", async () => {
    const bare = ctx.mkdir("bare-rootfs");
    mkdirSync(join(bare, "etc"));
    writeFileSync(join(bare, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    await expectError(["run", bare, "sh"], 127, '"sh"');
  });
});

describe("bad flags and arguments", () => {
  test("unknown flag --bogus: the message names it", async () => {
    await expectError(["run", "--bogus", ctx.rootfs, "true"], 125, "--bogus");
  });

  test("unknown short flag -Z", async () => {
    await expectError(["run", "-Z", ctx.rootfs, "true"], 125, "-Z");
  });

  test("unknown global flag before the command", async () => {
    await expectError(["--bogus", "run", ctx.rootfs, "true"], 125, "--bogus");
  });

  test("the message for an unknown global flag shows a well-formed command (no empty name)", async () => {
    const r = await expectError(["--bogus", "run", ctx.rootfs, "true"], 125, "--bogus");
    expect(r.stderr).not.toMatch(/"nsbox "|nsbox {2}/);
  });

  test("unknown command", async () => {
    await expectError(["runn", ctx.rootfs, "true"], 125, "runn");
  });

  test("missing command", async () => {
    await expectError(["run", ctx.rootfs], 125, /command/);
  });

  test("missing rootfs and command", async () => {
    await expectError(["run"], 125, /ROOTFS/);
  });

  test("a flag without its value", async () => {
    await expectError(["run", "--hostname"], 125, "--hostname");
  });

  for (const u of ["nosuchuser", "1:2:3", "-5", "nobody:nosuchgroup", "99999999999"]) {
    test(`bad --user ${u}`, async () => {
      await expectError(["run", "-u", u, ctx.rootfs, "id"], 125, /--user|user/);
    });
  }

  test("--user outside the --userns range", async () => {
    await expectError(["run", "--userns=100000:1000", "-u", "5000", ctx.rootfs, "id"], 125, /userns/);
  });

  for (const v of ["0:65536", "abc", "100000", "100000:0"]) {
    test(`bad --userns=${v}`, async () => {
      await expectError(["run", `--userns=${v}`, ctx.rootfs, "true"], 125, "--userns");
    });
  }

  test("a volume whose host path does not exist", async () => {
    await expectError(["run", "-v", `${join(ctx.tmp, "nope")}:/data`, ctx.rootfs, "true"], 125, "nope");
  });

  test("a relative volume host path", async () => {
    await expectError(["run", "-v", "relative/dir:/data", ctx.rootfs, "true"], 125, "relative/dir");
  });

  test("a relative volume container path", async () => {
    await expectError(["run", "-v", `${ctx.tmp}:data`, ctx.rootfs, "true"], 125, "data");
  });

  test("a volume with a bad mode", async () => {
    await expectError(["run", "-v", `${ctx.tmp}:/data:rx`, ctx.rootfs, "true"], 125, "rx");
  });

  for (const h of ["bad_host!", "-leading-dash", "a".repeat(65), "has space"]) {
    test(`bad --hostname ${JSON.stringify(h.length > 20 ? `${h.slice(0, 10)}...` : h)}`, async () => {
      await expectError(["run", "--hostname", h, ctx.rootfs, "true"], 125, "--hostname");
    });
  }

  test("bad --tmpfs option", async () => {
    await expectError(["run", "--tmpfs", "/scratch:bogus=1", ctx.rootfs, "true"], 125, "bogus=1");
  });

  test("relative --tmpfs path", async () => {
    await expectError(["run", "--tmpfs", "scratch", ctx.rootfs, "true"], 125, "scratch");
  });

  test("relative --workdir", async () => {
    await expectError(["run", "-w", "rel", ctx.rootfs, "true"], 125, "rel");
  });

  test("bad -e name", async () => {
    await expectError(["run", "-e", "1BAD=x", ctx.rootfs, "true"], 125, "1BAD");
  });
});

describe("not root", () => {
  test("a non-root caller (rootless) cannot use root's roots, nor map host ids: 125, one clear line", async () => {
    // a copy everyone can execute, whatever the checkout's permissions
    const bin = join(ctx.mkdir("bin-nobody"), "nsbox");
    copyFileSync(NSBOX, bin);
    const prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
    await expectError(["run", "--net", "none", ctx.rootfs, "true"], 125, /permission denied.*give a directory you may write/, { bin, prefix });
    // with roots of its own, the first refusal is the mapping of host ids
    const own = ctx.mkdir("nobody-roots");
    chmodSync(own, 0o777);
    const env = { NSBOX_ROOT: join(own, "data"), NSBOX_STATE: join(own, "state") };
    await expectError(["run", "--userns=100000:65536", "--net", "none", ctx.rootfs, "true"], 125, /--userns 100000:65536 needs root/, { bin, prefix, env });
  });
});

describe("--help", () => {
  for (const args of [["--help"], ["-h"], ["run", "--help"], ["run", "-h"], ["rootfs", "--help"], ["run", "-i", "--help"]]) {
    test(`nsbox ${args.join(" ")} exits 0 with the usage on stdout`, async () => {
      const r = await ctx.nsbox(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/USAGE/);
      expect(r.stderr).toBe("");
      if (args[0] === "run") expect(r.stdout).toContain("ROOTFS");
    });
  }

  test("nsbox run ROOTFS sh --help passes --help to sh", async () => {
    const r = await ctx.run([ctx.rootfs, "sh", "--help"]);
    const all = r.stdout + r.stderr;
    expect(all).toContain("BusyBox");
    expect(all).toMatch(/Usage: sh/);
    expect(all).not.toContain("ROOTFS");
  });

  test("nsbox run ROOTFS sh -c 'echo -h --help' gives the flags to the command", async () => {
    const r = await ctx.run([ctx.rootfs, "sh", "-c", "echo $0 $1", "-h", "--help"]);
    expect(r.stdout).toBe("-h --help\n");
    expect(r.code).toBe(0);
  });
});

describe("failures inside the container process (after clone) leave nothing behind", () => {
  const cases: [string, string[], RegExp][] = [
    // (targets in /proc and /sys are refused before clone: see reliability-volumes.test.ts)
    ["--tmpfs under a file", ["--tmpfs", "/etc/passwd/x"], /\/etc\/passwd\/x/],
    ["-v onto a path that cannot be created", ["-v", "/tmp:/etc/passwd/x"], /\/etc\/passwd\/x/],
    ["--workdir that is a file", ["-w", "/etc/passwd"], /\/etc\/passwd/],
    ["--workdir under /proc", ["-w", "/proc/x/y"], /\/proc\/x/],
    ["--userns with --tmpfs under a file", ["--userns", "--tmpfs", "/etc/passwd/x"], /\/etc\/passwd\/x/],
    ["--userns with a --workdir that is a file", ["--userns", "-w", "/etc/passwd"], /\/etc\/passwd/],
  ];
  for (const [what, flags, mention] of cases) {
    test(what, async () => {
      // several times: the child fails while nsbox sets up the cgroup and the
      // network beside it, and the child's error must win every time
      for (let i = 0; i < 10; i++) await expectError(["run", ...flags, ctx.rootfs, "true"], 125, mention);
    });
  }

  test("with --network none too", async () => {
    for (let i = 0; i < 3; i++) await expectError(["run", "--network", "none", "--tmpfs", "/etc/passwd/x", ctx.rootfs, "true"], 125, /\/etc\/passwd\/x/);
  });

  test("-t with a missing command: 127 and the terminal settings are not left raw", async () => {
    await expectError(["run", "-t", ctx.rootfs, "no-such-command"], 127, "no-such-command");
  });

  test("--init with a missing command: 127", async () => {
    await expectError(["run", "--init", ctx.rootfs, "no-such-command"], 127, "no-such-command");
  });

  test("--init with a file that is not executable: 126 and one nsbox line", async () => {
    await expectError(["run", "--init", ctx.rootfs, "/etc/passwd"], 126, "/etc/passwd");
  });

  test("--init with a missing absolute path: 127 and one nsbox line", async () => {
    await expectError(["run", "--init", ctx.rootfs, "/no/such/file"], 127, "/no/such/file");
  });

  test("a container that exits by itself leaves nothing either", async () => {
    const before = ctx.leftovers();
    const r = await ctx.run(["-v", `${ctx.tmp}:/host`, "--tmpfs", "/scratch", "--userns", ctx.rootfs, "sh", "-c", "exit 3"]);
    expect(r.code).toBe(3);
    expect(await addedLeftovers(before, ctx.leftovers)).toEqual({});
  });
});

describe("a failed run leaves no process behind", () => {
  // (what a failed run used to leave: the cgroup warm-up's writer, src/early.ts, started before the flags are read)
  test("no such rootfs, a bad flag value: exit 125, and every process nsbox started is reaped", () => {
    for (const args of [
      ["run", "--net", "none", join(ctx.tmp, "no-such-rootfs"), "true"],
      ["run", "--memory", "1x", ctx.rootfs, "true"],
      ["run", "-d", "--net", "none", join(ctx.tmp, "no-such-rootfs"), "true"],
    ]) {
      const r = underReaplessPid1([NSBOX, ...args], ctx.env());
      expect({ code: r.code, out: r.out, oneLine: isOneNsboxLine(r.err), left: r.left }).toEqual({ code: 125, out: "", oneLine: true, left: [] });
    }
  });
});
