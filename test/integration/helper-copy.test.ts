/**
 * The helper's copy in the data root (src/native/addon.ts): the first start
 * that finds none loads the embedded helper through a memfd and writes the copy
 * (lib/helper-<sha256>.node, 0500 in a 0700 directory, written whole or not at
 * all); the starts after it load the copy. A damaged copy is replaced, and a
 * data root where no copy can be written only costs the memfd route.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NSBOX, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("helper-copy");

const REPO = join(import.meta.dir, "..", "..");
const HELPER = readFileSync(join(REPO, process.arch === "arm64" ? "build/aarch64/nsbox-helper.so" : "build/nsbox-helper.so"));
const SHA = new Bun.CryptoHasher("sha256").update(HELPER).digest("hex");
const NAME = `helper-${SHA.slice(0, 16)}.node`;

/** Runs `true` in a container with its own data root; returns the trace's "helper loaded" mark. */
async function runWith(dataRoot: string): Promise<string> {
  const r = await ctx.run(["--net", "none", ctx.rootfs, "true"], { env: { NSBOX_ROOT: dataRoot, NSBOX_TRACE: "1" } });
  expect({ code: r.code, err: r.stderr.split("\n").filter((l) => l && !l.startsWith("[trace")) }).toEqual({ code: 0, err: [] });
  const marks = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("[trace]"))
    .map((l) => l.replace(/^\[trace\] +[0-9.]+ ms +[0-9.]+ MiB +/, ""));
  const loaded = marks.filter((m) => m.startsWith("helper loaded"));
  expect(loaded).toHaveLength(1);
  return loaded[0] as string;
}

const MEMFD = "helper loaded (through a memfd: no copy in the data root yet)";

describe("the helper's copy in the data root", () => {
  test("the first run writes it (0500 in a 0700 directory, the embedded bytes, no temporary file); the next loads it", async () => {
    const root = ctx.mkdir("fresh-root");
    expect(await runWith(root)).toBe(MEMFD);
    const lib = join(root, "lib");
    expect(readdirSync(lib)).toEqual([NAME]);
    expect(statSync(lib).mode & 0o7777).toBe(0o700);
    const copy = join(lib, NAME);
    expect(statSync(copy).mode & 0o7777).toBe(0o500);
    expect(statSync(copy).uid).toBe(process.getuid?.() as number);
    expect(Buffer.compare(readFileSync(copy), HELPER)).toBe(0);
    expect(await runWith(root)).toBe("helper loaded");
    expect(readdirSync(lib)).toEqual([NAME]);
  });

  test("a damaged copy (truncated, or not an ELF file) is not used: the run goes through a memfd and writes it again", async () => {
    for (const damage of [HELPER.subarray(0, 200), Buffer.from("not a shared object\n")]) {
      const root = ctx.mkdir(`damaged-${damage.length}`);
      mkdirSync(join(root, "lib"), { mode: 0o700 });
      writeFileSync(join(root, "lib", NAME), damage, { mode: 0o500 });
      expect(await runWith(root)).toBe(MEMFD);
      expect(Buffer.compare(readFileSync(join(root, "lib", NAME)), HELPER)).toBe(0);
      expect(readdirSync(join(root, "lib"))).toEqual([NAME]);
      expect(await runWith(root)).toBe("helper loaded");
    }
  });

  test("where no copy can be written (lib is a file, or a directory nsbox may not write), every run goes through a memfd and leaves nothing", async () => {
    const asFile = ctx.mkdir("lib-is-a-file");
    writeFileSync(join(asFile, "lib"), "mine\n");
    const readOnly = ctx.mkdir("lib-read-only");
    mkdirSync(join(readOnly, "lib"), { mode: 0o500 });
    // root bypasses the mode bits: an immutable directory refuses root too
    const immutable = Bun.spawnSync(["chattr", "+i", join(readOnly, "lib")]).exitCode === 0;
    try {
      for (const root of immutable ? [asFile, readOnly] : [asFile]) {
        expect(await runWith(root)).toBe(MEMFD);
        expect(await runWith(root)).toBe(MEMFD);
      }
      expect(readFileSync(join(asFile, "lib"), "utf8")).toBe("mine\n");
      if (immutable) expect(readdirSync(join(readOnly, "lib"))).toEqual([]);
    } finally {
      if (immutable) Bun.spawnSync(["chattr", "-i", join(readOnly, "lib")]);
      chmodSync(join(readOnly, "lib"), 0o700);
    }
  });

  test("writing the copy removes other builds' copies older than a day and dead writers' temporary files, nothing else", async () => {
    const root = ctx.mkdir("upgraded");
    const lib = join(root, "lib");
    mkdirSync(lib, { mode: 0o700 });
    const old = "helper-0123456789abcdef.node";
    const recent = "helper-fedcba9876543210.node"; // another build in use beside this one
    const deadTmp = `.${NAME}.4194305`; // above pid_max: no such process
    const liveTmp = `.${NAME}.1`; // init's: a writer still at work
    for (const f of [old, recent, deadTmp, liveTmp, "notes.txt"]) writeFileSync(join(lib, f), "x");
    const twoDaysAgo = new Date(Date.now() - 2 * 86400 * 1000);
    utimesSync(join(lib, old), twoDaysAgo, twoDaysAgo);
    utimesSync(join(lib, recent), new Date(Date.now() - 3600 * 1000), new Date(Date.now() - 3600 * 1000));
    expect(await runWith(root)).toBe(MEMFD);
    expect(readdirSync(lib).sort()).toEqual([liveTmp, NAME, recent, "notes.txt"].sort());
  });

  test("a noexec data root: the copy is written once, then each run goes through a memfd without writing it again", () => {
    // a tmpfs mounted noexec in a mount namespace of this test's own
    const root = ctx.mkdir("noexec-root");
    const copy = join(root, "lib", NAME);
    const run = `NSBOX_ROOT=${root} NSBOX_STATE=${root}/run NSBOX_TRACE=1 ${NSBOX} run --rm --net none ${ctx.rootfs} true 2>&1 | grep -o 'helper loaded.*'`;
    const script = [
      "set -e",
      `mount -t tmpfs -o noexec,mode=0700 nsbox-test ${root}`,
      run,
      `stat -c '%i %y' ${copy}`,
      run,
      `stat -c '%i %y' ${copy}`,
      `cmp ${copy} ${join(REPO, process.arch === "arm64" ? "build/aarch64/nsbox-helper.so" : "build/nsbox-helper.so")} && echo same`,
    ].join("\n");
    const r = Bun.spawnSync(["unshare", "-m", "--propagation", "private", "sh", "-c", script], { stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    const [first, stat1, second, stat2, same] = r.stdout.toString().trim().split("\n");
    expect({ first, second, same }).toEqual({ first: MEMFD, second: MEMFD, same: "same" });
    expect(stat2).toBe(stat1 as string);
  });

  test("a data root that does not exist yet gets no copy before nsbox makes it, then one", async () => {
    const root = join(ctx.mkdir("parent"), "root-to-be");
    expect(existsSync(root)).toBe(false);
    // this run makes the data root (after the helper was loaded), the next one the copy
    expect(await runWith(root)).toBe(MEMFD);
    expect(existsSync(join(root, "lib"))).toBe(false);
    expect(await runWith(root)).toBe(MEMFD);
    expect(readdirSync(join(root, "lib"))).toEqual([NAME]);
    expect(await runWith(root)).toBe("helper loaded");
  });
});
