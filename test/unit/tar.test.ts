/**
 * extractTar against GNU tar. Archives are built at run time (GNU tar from a tree
 * made on disk, Python's tarfile, and headers written by hand below), extracted
 * by both `tar -xpf` and extractTar, and the two trees compared entry by entry.
 * Most tests need root, as nsbox does (owners, device nodes).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { makedev } from "../../src/native/mknod.ts";
import { extractTar, TarError } from "../../src/rootfs/tar.ts";

const isRoot = process.getuid?.() === 0;
const hasPython = Bun.which("python3") !== null;
const MINBASE = "/tmp/minbase.tar";

// ---------------------------------------------------------------------------
// Scratch directories, all removed at the end.

const scratchDirs = new Set<string>();

/** Removes a scratch directory, even one holding read-only directories when not root. */
function discard(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    Bun.spawnSync(["chmod", "-R", "u+rwx", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
  scratchDirs.delete(dir);
}

// Removing big trees can take seconds on a slow disk.
afterAll(() => {
  for (const d of scratchDirs) discard(d);
}, 120_000);

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), "nsbox-tar-test-"));
  scratchDirs.add(d);
  return d;
}

function run(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): string {
  const r = Bun.spawnSync(argv, { cwd: opts.cwd, env: opts.env ?? process.env, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function sh(script: string, cwd: string): void {
  run(["bash", "-euo", "pipefail", "-c", script], { cwd });
}

function python(script: string, ...args: string[]): void {
  run(["python3", "-c", script, ...args]);
}

function gnuExtract(tarball: string): string {
  const dest = join(scratch(), "gnu");
  mkdirSync(dest);
  run(["tar", "-xpf", tarball, "-C", dest]);
  return dest;
}

async function oursExtract(tarball: string, opts?: { sameOwner?: boolean }): Promise<string> {
  const dest = join(scratch(), "ours");
  mkdirSync(dest);
  await extractTar(tarball, dest, opts);
  return dest;
}

// ---------------------------------------------------------------------------
// Tree snapshots and their comparison.

interface Node {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdev: number;
  size: number;
  mtimeNs: bigint;
  hash?: string;
  target?: string;
  /** for hardlinked files: the first path (sorted) of the group in the tree */
  linkGroup?: string;
}

function typeOf(mode: number): string {
  const t = mode & 0o170000;
  const types: Record<number, string> = { 16384: "dir", 32768: "file", 40960: "symlink", 8192: "chr", 24576: "blk", 4096: "fifo" };
  return types[t] ?? `0o${t.toString(8)}`;
}

/** Every path under root (root itself is ""), keyed by its bytes read as latin1. */
function snapshot(root: string): Map<string, Node> {
  const out = new Map<string, Node>();
  const inodes = new Map<bigint, string[]>();
  const walk = (rel: string): void => {
    const full = Buffer.from(rel === "" ? root : `${root}/${rel}`, "latin1");
    const st = lstatSync(full, { bigint: true });
    const mode = Number(st.mode);
    const node: Node = {
      type: typeOf(mode),
      mode: mode & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      nlink: Number(st.nlink),
      rdev: Number(st.rdev),
      size: node_size(mode, st.size),
      mtimeNs: st.mtimeNs,
    };
    if (node.type === "file") {
      node.hash = createHash("sha256").update(readFileSync(full)).digest("hex");
      if (st.nlink > 1n) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), rel]);
    }
    if (node.type === "symlink") {
      node.target = readlinkSync(full, { encoding: "buffer" }).toString("latin1");
      if (st.nlink > 1n) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), rel]);
    }
    out.set(rel, node);
    if (node.type === "dir")
      for (const name of readdirSync(full, { encoding: "buffer" })) walk(rel === "" ? name.toString("latin1") : `${rel}/${name.toString("latin1")}`);
  };
  walk("");
  for (const paths of inodes.values()) {
    const first = [...paths].sort()[0] as string;
    for (const p of paths) (out.get(p) as Node).linkGroup = first;
  }
  return out;
}

function node_size(mode: number, size: bigint): number {
  // A directory's size depends on the file system's history, not on the archive.
  return typeOf(mode) === "dir" ? 0 : Number(size);
}

/**
 * Differences between two trees, as readable lines. Mtimes must match within
 * 1 us (pax times have nanoseconds; Bun's utimes takes a double), except that a
 * directory both trees stamped at extraction time (one made as a parent, or
 * changed after its metadata was set) only has to be recent in both.
 */
function compareTrees(a: Map<string, Node>, b: Map<string, Node>, since: bigint): string[] {
  const diffs: string[] = [];
  const show = (p: string): string => JSON.stringify(Buffer.from(p, "latin1").toString());
  for (const path of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(path);
    const y = b.get(path);
    if (!x || !y) {
      diffs.push(`${show(path)}: only in ${x ? "GNU tar's tree" : "extractTar's tree"}`);
      continue;
    }
    for (const key of ["type", "mode", "uid", "gid", "nlink", "rdev", "size", "hash", "target", "linkGroup"] as const)
      if (x[key] !== y[key]) diffs.push(`${show(path)}: ${key} ${String(x[key])} (GNU) vs ${String(y[key])} (extractTar)`);
    const recent = x.mtimeNs >= since && y.mtimeNs >= since;
    const delta = x.mtimeNs > y.mtimeNs ? x.mtimeNs - y.mtimeNs : y.mtimeNs - x.mtimeNs;
    if (!recent && delta > 1000n) diffs.push(`${show(path)}: mtime ${x.mtimeNs} (GNU) vs ${y.mtimeNs} (extractTar)`);
  }
  return diffs;
}

/** Extracts with both and expects identical trees; returns the snapshot. */
async function expectSameAsGnu(tarball: string): Promise<Map<string, Node>> {
  const since = BigInt(Date.now() - 1000) * 1_000_000n;
  const gnuDir = gnuExtract(tarball);
  const gnu = snapshot(gnuDir);
  discard(dirname(gnuDir));
  const oursDir = await oursExtract(tarball);
  const ours = snapshot(oursDir);
  discard(dirname(oursDir));
  expect(compareTrees(gnu, ours, since)).toEqual([]);
  return ours;
}

// ---------------------------------------------------------------------------
// A tar writer for hand-made archives (edge cases and attacks).

interface Member {
  name: string | Buffer;
  type?: string;
  data?: Buffer | string;
  /** header size field, when it must differ from the data (pax size tests) */
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** "ustar\0" + "00" (POSIX, the default), GNU's "ustar  \0", or none (v7) */
  magic?: "posix" | "gnu" | "v7";
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(`${value.toString(8).padStart(len - 1, "0")}\0`, off, len, "latin1");
}

function header(m: Member): Buffer {
  const h = Buffer.alloc(512);
  const name = typeof m.name === "string" ? Buffer.from(m.name) : m.name;
  if (name.length > 100) throw new Error("name too long for the test writer");
  name.copy(h, 0);
  const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
  octal(h, 100, 8, m.mode ?? 0o644);
  octal(h, 108, 8, m.uid ?? 0);
  octal(h, 116, 8, m.gid ?? 0);
  octal(h, 124, 12, m.size ?? data.length);
  octal(h, 136, 12, m.mtime ?? 1_500_000_000);
  h.write(m.type ?? "0", 156, 1, "latin1");
  Buffer.from(m.linkname ?? "").copy(h, 157);
  const magic = m.magic ?? "posix";
  if (magic === "posix") h.write("ustar\x0000", 257, 8, "latin1");
  if (magic === "gnu") h.write("ustar  \0", 257, 8, "latin1");
  octal(h, 329, 8, m.devmajor ?? 0);
  octal(h, 337, 8, m.devminor ?? 0);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return h;
}

function pad(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function member(m: Member): Buffer {
  return Buffer.concat([header(m), pad(m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data))]);
}

/** A pax extended header ('x', or 'g' for global) with these records. */
function pax(records: Record<string, string | Buffer>, type = "x"): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from("\n")]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return member({ name: "PaxHeader", type, data: Buffer.concat(parts) });
}

function writeArchive(members: Buffer[], end = true): string {
  const path = join(scratch(), "a.tar");
  writeFileSync(path, Buffer.concat([...members, Buffer.alloc(end ? 1024 : 0)]));
  return path;
}

// ---------------------------------------------------------------------------
// Fixtures.

const T = 1_500_000_000;

/** A small rootfs-like tree on disk with every kind of entry tar knows. */
function buildTree(root: string): void {
  const p = "p".repeat(70);
  const q = "q".repeat(70);
  sh(
    `
    mkdir -p etc usr/bin usr/lib tmp var/mail home/u ro dev run deep/${p}/${q} long
    printf 'root:x:0:0\\n' > etc/passwd
    head -c 1000000 /dev/urandom > usr/lib/big.bin
    : > empty; head -c 512 /dev/urandom > b512; head -c 513 /dev/urandom > b513
    cp usr/lib/big.bin usr/bin/su; chmod 4755 usr/bin/su
    echo c > usr/bin/crontab; chgrp 102 usr/bin/crontab; chmod 2755 usr/bin/crontab
    echo s > usr/bin/both; chown 1234:1234 usr/bin/both; chmod 6755 usr/bin/both
    echo z > zero-mode; chmod 0 zero-mode
    chmod 1777 tmp; chgrp 8 var/mail; chmod 2775 var/mail
    echo x > home/u/.profile; chown 1000:1000 home/u home/u/.profile; chmod 700 home/u; chmod 600 home/u/.profile
    echo inside > ro/file; chmod 444 ro/file; chmod 555 ro
    ln -s /usr/lib/big.bin usr/bin/abs-link
    ln -s ../lib/big.bin usr/bin/rel-link; chown -h 7:8 usr/bin/rel-link
    ln -s /nonexistent/target dangling
    ln usr/bin/su usr/bin/su-hard; ln etc/passwd passwd-hard; ln -P dangling dangling-hard
    mknod dev/null c 1 3; chmod 666 dev/null
    mknod dev/sda1 b 8 1; chgrp 6 dev/sda1; chmod 660 dev/sda1
    mknod dev/big c 300 70000
    mkfifo run/initctl; chmod 600 run/initctl
    echo deep > deep/${p}/${q}/${"f".repeat(50)}
    mkdir -p long/${"d".repeat(120)}/${"e".repeat(120)}
    echo long > long/${"d".repeat(120)}/${"e".repeat(120)}/${"f".repeat(60)}
    ln -s ${"t".repeat(150)} long/longlink
    echo ids > long/ids; chown 3000000:2500000 long/ids
    touch "long/café" $'long/\\xe9t\\xe9'
    find . -depth -exec touch -h -d @${T} {} +
    touch -h -d @${T - 1000} etc/passwd dangling
    touch -d @${T}.123456789 usr/lib/big.bin
    touch -d @${T + 7} usr etc .
    `,
    root,
  );
}

/** Python's tarfile: its pax and GNU writers, and cases a tree on disk cannot hold. */
const PYTHON_FIXTURE = `
import io, sys, tarfile
out, fmt = sys.argv[1], sys.argv[2]
T = ${T}
kw = {"pax_headers": {"comment": "a global header"}} if fmt == "pax" else {}
def add(t, name, type=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, mtime=T, link="", major=0, minor=0):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = type, mode, uid, gid, mtime, link
    ti.devmajor, ti.devminor, ti.uname, ti.gname = major, minor, "", ""
    if type == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)
D, S, H = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
with tarfile.open(out, "w", format={"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT}[fmt], **kw) as t:
    add(t, "./", D, mode=0o751, mtime=T + 1)
    add(t, "usr/bin/su", data=bytes(range(256)) * 3000, mode=0o4755)
    add(t, "usr/bin/both", data=b"s", mode=0o6755, uid=1234, gid=1234)
    add(t, "usr/lib64/ld.so", S, link="/usr/lib/x86_64-linux-gnu/libc.so.6", uid=7, gid=8)
    add(t, "usr/bin/rel", S, link="../lib/x86_64-linux-gnu/libc.so.6")
    add(t, "usr/bin/su-hard", H, link="usr/bin/su")
    add(t, "abs", S, link="/etc/shadow")
    add(t, "abs-hard", H, link="./abs")
    add(t, "dev/null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3)
    add(t, "dev/big", tarfile.BLKTYPE, mode=0o600, major=4095, minor=1048575)
    add(t, "run/fifo", tarfile.FIFOTYPE, mode=0o620, gid=5)
    add(t, "a" * 90 + "/" + "b" * 90 + "/" + "c" * 90 + "/" + "d" * 40, data=b"a long name")
    add(t, "longlink", S, link="t" * 200)
    add(t, "big-ids", data=b"ids", uid=3000000, gid=2500000)
    add(t, "frac", data=b"f", mtime=T + 0.25)
    add(t, "epoch", data=b"")
    add(t, "caf\\u00e9/na\\u00efve", data=b"utf-8")
    add(t, "after/inner/file", data=b"1")
    add(t, "after/inner", D, mode=0o750, uid=5, gid=6, mtime=T - 100)
    add(t, "after", D, mode=0o705, uid=3, gid=4, mtime=T - 200)
    add(t, "r", D, mtime=T - 300)
    add(t, "r/a", data=b"a")
    add(t, "s", D, mtime=T - 400)
    add(t, "r/b", data=b"b")
    add(t, "dup", data=b"first")
    add(t, "dup", data=b"second", mode=0o600)
    add(t, "sl", S, link="etc")
    add(t, "sl", data=b"now a file")
    add(t, "sd", S, link="elsewhere")
    add(t, "sd", D, mode=0o700)
    add(t, "ed", D)
    add(t, "ed", S, link="/x")
    add(t, "x//y/./z", data=b"z")
    add(t, "ro", D, mode=0o555, mtime=T - 500)
    add(t, "ro/inside", data=b"written after its parent became read-only", mode=0o400)
`;

// ---------------------------------------------------------------------------

describe.skipIf(!isRoot)("extractTar builds the tree GNU tar builds", () => {
  let src = "";
  beforeAll(() => {
    src = scratch();
    buildTree(src);
  });
  const archive = (format: string, ...extra: string[]): string => {
    const out = join(scratch(), `${format}.tar`);
    run(["tar", `--format=${format}`, ...extra, "-cf", out, "-C", src, "."]);
    return out;
  };

  for (const format of ["gnu", "posix"]) {
    test(`GNU tar --format=${format}: all entry types, long names, big ids, setuid bits`, async () => {
      const tree = await expectSameAsGnu(archive(format));
      // The comparison is with GNU tar; these make sure the fixture holds what it claims.
      expect(tree.get("usr/bin/su")?.mode).toBe(0o4755);
      expect(tree.get("usr/bin/both")).toMatchObject({ mode: 0o6755, uid: 1234, gid: 1234 });
      expect(tree.get("usr/bin/abs-link")?.target).toBe("/usr/lib/big.bin");
      expect(tree.get("usr/bin/su-hard")?.linkGroup).toBe("usr/bin/su");
      expect(tree.get("dangling-hard")).toMatchObject({ type: "symlink", linkGroup: "dangling" });
      expect(tree.get("dev/big")).toMatchObject({ type: "chr", rdev: Number(makedev(300, 70000)) });
      expect(tree.get("run/initctl")?.type).toBe("fifo");
      expect(tree.get("long/ids")).toMatchObject({ uid: 3000000, gid: 2500000 });
      expect(tree.get("tmp")?.mode).toBe(0o1777);
      expect(tree.get("ro")?.mode).toBe(0o555);
      expect(tree.get("")?.mtimeNs).toBe(BigInt(T + 7) * 1_000_000_000n);
      expect(tree.has("long/\xe9t\xe9")).toBe(true); // a name that is not UTF-8
    });
  }

  test("GNU tar --format=ustar: the prefix field", async () => {
    const tree = await expectSameAsGnu(archive("ustar", "--exclude=./long"));
    expect([...tree.keys()].some((k) => k.startsWith("deep/p") && k.endsWith(`/${"f".repeat(50)}`))).toBe(true);
  });

  test("GNU tar --format=v7: directories as regular files with a trailing slash", async () => {
    const tree = await expectSameAsGnu(archive("v7", "--exclude=./long", "--exclude=./dev", "--exclude=./run", "--exclude=./deep"));
    expect(tree.get("usr/bin")?.type).toBe("dir");
  });

  describe.skipIf(!hasPython)("Python tarfile archives", () => {
    for (const format of ["pax", "gnu"]) {
      test(`${format} format: hardlinks to symlinks, devices, late and revisited directories, replaced entries`, async () => {
        const out = join(scratch(), `${format}.tar`);
        python(PYTHON_FIXTURE, out, format);
        const tree = await expectSameAsGnu(out);
        expect(tree.get("")).toMatchObject({ mode: 0o751, mtimeNs: BigInt(T + 1) * 1_000_000_000n });
        expect(tree.get("after")).toMatchObject({ mode: 0o705, uid: 3, gid: 4, mtimeNs: BigInt(T - 200) * 1_000_000_000n });
        expect(tree.get("abs-hard")).toMatchObject({ type: "symlink", target: "/etc/shadow", linkGroup: "abs" });
        expect(tree.get("usr/lib64/ld.so")).toMatchObject({ target: "/usr/lib/x86_64-linux-gnu/libc.so.6", uid: 7, gid: 8 });
        expect(tree.get("dev/big")?.rdev).toBe(Number(makedev(4095, 1048575)));
        expect(tree.get("sl")?.type).toBe("file");
        expect(tree.get("sd")?.type).toBe("dir");
        expect(tree.get("ed")?.type).toBe("symlink");
        expect(tree.get("x/y/z")?.type).toBe("file");
        expect(tree.get("big-ids")).toMatchObject({ uid: 3000000, gid: 2500000 });
      });
    }
  });

  test("hand-made pax: size, uid, gid, mtime and path overrides, global records", async () => {
    const tarball = writeArchive([
      pax({ uid: "4242", mtime: String(T - 5) }, "g"),
      member({ name: "global-applies", data: "g", uid: 1 }),
      pax({ size: "11", path: "real-name-\u00fcber-long-".padEnd(150, "x"), uid: "77", gid: "88", mtime: `${T}.75` }),
      member({ name: "ignored-name", data: "hello world", size: 0 }),
      pax({ linkpath: "/a/very/long/".padEnd(180, "l") }),
      member({ name: "paxlink", type: "2", linkname: "short" }),
      member({ name: "v7-dir/", type: "\0", magic: "v7", mode: 0o711 }),
      member({ name: "contiguous", type: "7", data: "seven" }),
      member({ name: "gnu-magic", magic: "gnu", data: "gnu" }),
    ]);
    const tree = await expectSameAsGnu(tarball);
    expect(tree.get("global-applies")).toMatchObject({ uid: 4242, mtimeNs: BigInt(T - 5) * 1_000_000_000n });
    expect(tree.get(Buffer.from("real-name-\u00fcber-long-".padEnd(150, "x")).toString("latin1"))).toMatchObject({
      size: 11,
      uid: 77,
      gid: 88,
    });
    expect(tree.get("paxlink")?.target).toBe("/a/very/long/".padEnd(180, "l"));
    expect(tree.get("v7-dir")).toMatchObject({ type: "dir", mode: 0o711 });
  });

  test('the archive\'s root entry "/" (umoci writes one) is the target itself, as GNU tar takes it', async () => {
    const tarball = writeArchive([member({ name: "/", type: "5", mode: 0o755 }), member({ name: "f", data: "x" })]);
    const tree = await expectSameAsGnu(tarball);
    expect([...tree.keys()].sort()).toEqual(["", "f"]);
  });

  test("GNU volume labels are skipped", async () => {
    const tarball = writeArchive([member({ name: "My Volume", type: "V", magic: "gnu" }), member({ name: "f", data: "x" })]);
    const tree = await expectSameAsGnu(tarball);
    expect([...tree.keys()].sort()).toEqual(["", "f"]);
  });
});

describe.skipIf(!isRoot)("compression and input", () => {
  let plain = "";
  let since = 0n;
  beforeAll(() => {
    const src = scratch();
    buildTree(src);
    plain = join(scratch(), "fixture.tar");
    run(["tar", "--format=posix", "-cf", plain, "-C", src, "."]);
    since = BigInt(Date.now() - 1000) * 1_000_000n;
  });
  let reference: Map<string, Node> | undefined;
  const expected = async (): Promise<Map<string, Node>> => {
    reference ??= snapshot(await oursExtract(plain));
    return reference;
  };
  const compressed = (cmd: string, name: string): string => {
    const out = join(scratch(), name);
    sh(`${cmd} < "${plain}" > "${out}"`, tmpdir());
    return out;
  };

  test("the plain archive itself matches GNU tar", async () => {
    const gnu = snapshot(gnuExtract(plain));
    expect(compareTrees(gnu, await expected(), since)).toEqual([]);
  });

  for (const [cmd, name] of [
    ["gzip -c", "f.tar.gz"],
    ["gzip -c", "f.tgz"],
    ["zstd -q -c", "f.tar.zst"],
    ["zstd -q -c", "f.tar.zstd"],
    ["gzip -c", "gzip-named.tar"],
    ["zstd -q -c", "zstd-named.tar.gz"],
    ["cat", "plain-named.tar.zst"],
  ] as const) {
    test(`${name} (${cmd.split(" ")[0]}), found by its magic bytes`, async () => {
      const tree = snapshot(await oursExtract(compressed(cmd, name)));
      expect(compareTrees(await expected(), tree, since)).toEqual([]);
    });
  }

  test("zstd without zstd(1) on PATH: node:zlib in process", async () => {
    const tarball = compressed("zstd -q -c", "inproc.tar.zst");
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    let dest: string;
    try {
      dest = await oursExtract(tarball);
    } finally {
      process.env.PATH = path;
    }
    expect(compareTrees(await expected(), snapshot(dest), since)).toEqual([]);
  });

  // A FIFO fed a few hundred bytes at a time: headers and data arrive split at
  // arbitrary places, and the input cannot seek.
  for (const [cmd, label] of [
    ["cat", "tar"],
    ["gzip -c", "gzip"],
    ["zstd -q -c", "zstd"],
  ] as const) {
    test.skipIf(!hasPython)(`${label} from a pipe, in small uneven writes`, async () => {
      const input = compressed(cmd, `pipe-${label}`);
      const fifo = join(scratch(), "fifo");
      run(["mkfifo", fifo]);
      const writer = Bun.spawn(
        [
          "python3",
          "-c",
          `import os, random, sys
data = open(sys.argv[1], "rb").read()
fd = os.open(sys.argv[2], os.O_WRONLY)
random.seed(7)
i = 0
while i < len(data):
    n = random.choice([1, 7, 100, 511, 512, 513, 1000, 4096, 70000])
    os.write(fd, data[i:i + n])
    i += n
`,
          input,
          fifo,
        ],
        { stdout: "inherit", stderr: "inherit" },
      );
      const tree = snapshot(await oursExtract(fifo));
      expect(await writer.exited).toBe(0);
      expect(compareTrees(await expected(), tree, since)).toEqual([]);
    });
  }
});

describe("malformed archives are refused with a TarError", () => {
  const refused = async (tarball: string): Promise<string> => {
    const dest = join(scratch(), "dest");
    mkdirSync(dest);
    const err = await extractTar(tarball, dest).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TarError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  };

  test("a truncated archive", async () => {
    const whole = Buffer.concat([member({ name: "big", data: Buffer.alloc(5000, 1) })]);
    const tarball = join(scratch(), "t.tar");
    writeFileSync(tarball, whole.subarray(0, 3000));
    expect(await refused(tarball)).toContain('entry "big"');
    writeFileSync(tarball, whole.subarray(0, 300));
    expect(await refused(tarball)).toContain("truncated");
  });

  test("a file that is not a tar archive, and a corrupt header later on", async () => {
    const tarball = join(scratch(), "n.tar");
    writeFileSync(tarball, Buffer.alloc(2048, "x"));
    expect(await refused(tarball)).toContain("not a tar archive");
    const bad = member({ name: "second", data: "2" });
    bad[0] = 0x41; // the checksum no longer matches
    writeFileSync(tarball, Buffer.concat([member({ name: "first", data: "1" }), bad, Buffer.alloc(1024)]));
    expect(await refused(tarball)).toBe('corrupt tar header at byte 1024, after entry "first": bad checksum');
  });

  test("corrupt gzip and zstd data", async () => {
    const dir = scratch();
    const tarball = writeArchive([member({ name: "f", data: randomBytes(100000) })]);
    sh(`gzip -c "${tarball}" > a.gz; zstd -q -c "${tarball}" > a.zst; head -c 3000 a.gz > cut.tar.gz; head -c 3000 a.zst > cut.tar.zst`, dir);
    expect(await refused(join(dir, "cut.tar.gz"))).toContain("gzip data is corrupt");
    expect(await refused(join(dir, "cut.tar.zst"))).toContain("zstd data is corrupt");
  });

  test("xz and bzip2 are named, not misread", async () => {
    const dir = scratch();
    const tarball = writeArchive([member({ name: "f", data: "x" })]);
    sh(`xz -c "${tarball}" > a.tar.xz; bzip2 -c "${tarball}" > a.tar.bz2`, dir);
    expect(await refused(join(dir, "a.tar.xz"))).toContain("xz");
    expect(await refused(join(dir, "a.tar.bz2"))).toContain("bzip2");
  });

  test("an oversized GNU long name record", async () => {
    const tarball = writeArchive([member({ name: "././@LongLink", type: "L", size: 64 << 20 })], false);
    expect(await refused(tarball)).toContain("larger than the limit");
  });
});

// ---------------------------------------------------------------------------
// Safety. Each archive is extracted into sandbox/dest with a canary in
// sandbox/outside; afterwards nothing outside dest may differ in any way.

function listing(dir: string, skip: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const full = rel === "" ? dir : `${dir}/${rel}`;
    const st = lstatSync(full, { bigint: true });
    out.push(`${rel} ${st.mode} ${st.uid}:${st.gid} ${st.size} ${st.mtimeNs} ${st.ctimeNs}`);
    if (st.isDirectory() && full !== skip) for (const name of readdirSync(full).sort()) walk(rel === "" ? name : `${rel}/${name}`);
  };
  walk("");
  return out;
}

/** `build` gets the absolute path of the directory outside dest. */
async function expectRefused(build: (outside: string) => Buffer[], expected: string | RegExp): Promise<string> {
  const sandbox = scratch();
  const dest = join(sandbox, "dest");
  const outside = join(sandbox, "outside");
  mkdirSync(dest, { mode: 0o755 });
  mkdirSync(outside);
  writeFileSync(join(outside, "canary"), "canary\n");
  const tarball = join(sandbox, "evil.tar");
  writeFileSync(tarball, Buffer.concat([...build(outside), Buffer.alloc(1024)]));
  const before = listing(sandbox, dest);
  const err = await extractTar(tarball, dest).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TarError);
  expect((err as Error).message).toMatch(expected);
  expect(readFileSync(join(outside, "canary"), "utf8")).toBe("canary\n");
  // Everything but dest itself (whose mtime changes) is as it was.
  const notDest = (l: string): boolean => !l.startsWith("dest ");
  expect(listing(sandbox, dest).filter(notDest)).toEqual(before.filter(notDest));
  return (err as Error).message;
}

describe("unsafe archives are refused before anything leaves dest", () => {
  test('a ".." component', async () => {
    const msg = await expectRefused(() => [member({ name: "../outside/canary", data: "pwned" })], /climbs out/);
    expect(msg).toBe('refusing entry "../outside/canary": it climbs out of the target with ".."');
    await expectRefused(() => [member({ name: "a/../../outside/x", data: "pwned" })], /climbs out/);
    await expectRefused(() => [member({ name: "ok", type: "5" }), member({ name: "ok/../../x", type: "5" })], /climbs out/);
  });

  test("an absolute name, also through pax path and GNU long names", async () => {
    await expectRefused((out) => [member({ name: `${out}/canary`, data: "pwned" })], /is an absolute path/);
    await expectRefused(() => [pax({ path: "/tmp/pwned" }), member({ name: "innocent", data: "x" })], /"\/tmp\/pwned": it is an absolute path/);
    await expectRefused(() => [member({ name: "././@LongLink", type: "L", data: "../../pwned\0" }), member({ name: "innocent", data: "x" })], /climbs out/);
  });

  test("writing through a symlink from the archive, absolute or relative", async () => {
    await expectRefused(
      (out) => [member({ name: "lib", type: "2", linkname: out }), member({ name: "lib/canary", data: "pwned" })],
      'refusing entry "lib/canary": its parent "lib" is a symlink from the archive',
    );
    await expectRefused(() => [member({ name: "up", type: "2", linkname: "../outside" }), member({ name: "up/new", type: "5" })], /parent "up" is a symlink/);
    await expectRefused(
      () => [member({ name: "a", type: "5" }), member({ name: "a/b", type: "2", linkname: "../../outside" }), member({ name: "a/b/c/d", data: "x" })],
      /parent "a\/b" is a symlink/,
    );
    // dev nodes, FIFOs and hardlinks go through the same check
    await expectRefused((out) => [member({ name: "l", type: "2", linkname: out }), member({ name: "l/fifo", type: "6" })], /parent "l" is a symlink/);
  });

  test("a symlink replacing a directory that has content", async () => {
    await expectRefused(
      (out) => [
        member({ name: "d", type: "5" }),
        member({ name: "d/f", data: "x" }),
        member({ name: "d", type: "2", linkname: out }),
        member({ name: "d/canary", data: "pwned" }),
      ],
      'refusing entry "d": it would replace a directory that is not empty',
    );
    // an empty one may be replaced, but then it is a symlink like any other
    await expectRefused(
      (out) => [member({ name: "e", type: "5" }), member({ name: "e", type: "2", linkname: out }), member({ name: "e/canary", data: "pwned" })],
      /parent "e" is a symlink/,
    );
  });

  test("hardlinks to absolute paths, to .., to nothing, and through a linked symlink", async () => {
    await expectRefused((out) => [member({ name: "h", type: "1", linkname: `${out}/canary` })], /hardlink target ".*canary" is an absolute path/);
    await expectRefused(() => [member({ name: "h", type: "1", linkname: "../outside/canary" })], /hardlink target "..\/outside\/canary" climbs out/);
    await expectRefused(() => [member({ name: "h", type: "1", linkname: "missing" })], /hardlink target "missing" is not in the archive before it/);
    await expectRefused(
      (out) => [member({ name: "s", type: "2", linkname: out }), member({ name: "h", type: "1", linkname: "s" }), member({ name: "h/canary", data: "pwned" })],
      /parent "h" is a symlink/,
    );
    await expectRefused(
      (out) => [member({ name: "s", type: "2", linkname: out }), member({ name: "h", type: "1", linkname: "s/canary" })],
      /hardlink target "s\/canary" is not in the archive/,
    );
  });

  test("a later file or directory replaces a symlink instead of following it", async () => {
    const sandbox = scratch();
    const dest = join(sandbox, "dest");
    const outside = join(sandbox, "outside");
    mkdirSync(dest);
    mkdirSync(outside);
    writeFileSync(join(outside, "canary"), "canary\n");
    const tarball = writeArchive([
      member({ name: "f", type: "2", linkname: join(outside, "canary") }),
      member({ name: "f", data: "replaced", mode: 0o600 }),
      member({ name: "d", type: "2", linkname: outside }),
      member({ name: "d", type: "5", mode: 0o700 }),
      member({ name: "d/canary", data: "inside" }),
      member({ name: "n", type: "2", linkname: join(outside, "canary") }),
      member({ name: "n", type: "6" }),
    ]);
    const before = listing(outside, "");
    await extractTar(tarball, dest);
    expect(listing(outside, "")).toEqual(before);
    expect(readFileSync(join(dest, "f"), "utf8")).toBe("replaced");
    expect(readFileSync(join(dest, "d/canary"), "utf8")).toBe("inside");
    expect(lstatSync(join(dest, "d")).isDirectory()).toBe(true);
    expect(lstatSync(join(dest, "n")).isFIFO()).toBe(true);
  });

  test("names are normalised, and ./ stands for dest itself", async () => {
    const dest = await oursExtract(
      writeArchive([
        member({ name: "./", type: "5", mode: 0o750 }),
        member({ name: "./a/b", data: "1" }),
        member({ name: "a//c", data: "2" }),
        member({ name: "a/./d/", type: "5" }),
        member({ name: "e", type: "1", linkname: "./a//b" }),
      ]),
    );
    expect(readdirSync(join(dest, "a")).sort()).toEqual(["b", "c", "d"]);
    expect(lstatSync(join(dest, "e")).ino).toBe(lstatSync(join(dest, "a/b")).ino);
    expect(lstatSync(dest).mode & 0o7777).toBe(0o750);
  });

  test("dest's own path may be UTF-8 and names any bytes", async () => {
    const dest = join(scratch(), "d\u00e9j\u00e0 vu");
    mkdirSync(dest);
    const latin1 = Buffer.from([0x6e, 0xe9, 0x65]); // "née" in Latin-1: not UTF-8
    await extractTar(
      writeArchive([member({ name: "caf\u00e9", type: "5" }), member({ name: Buffer.concat([Buffer.from("caf\u00e9/"), latin1]), data: "x" })]),
      dest,
    );
    expect(readdirSync(join(dest, "caf\u00e9"), { encoding: "buffer" })).toEqual([latin1]);
  });

  test("dest must start empty: safety rests on knowing all of it", async () => {
    const dest = join(scratch(), "dest");
    mkdirSync(dest);
    writeFileSync(join(dest, "x"), "");
    const err = await extractTar(writeArchive([member({ name: "f", data: "x" })]), dest).catch((e: unknown) => e);
    expect((err as Error).message).toContain("not empty");
  });
});

// ---------------------------------------------------------------------------

describe.skipIf(!isRoot)("owners and privileges", () => {
  const tarball = (): string =>
    writeArchive([
      member({ name: "f", data: "x", mode: 0o4750, uid: 1234, gid: 5678 }),
      member({ name: "d", type: "5", mode: 0o2770, uid: 1234, gid: 5678 }),
      member({ name: "chr", type: "3", devmajor: 1, devminor: 3 }),
      member({ name: "blk", type: "4", devmajor: 8, devminor: 0 }),
      member({ name: "fifo", type: "6", mode: 0o640, uid: 1234 }),
      member({ name: "chr-link", type: "1", linkname: "chr" }),
    ]);

  test("sameOwner: false keeps our own uid and gid but the modes", async () => {
    const tree = snapshot(await oursExtract(tarball(), { sameOwner: false }));
    expect(tree.get("f")).toMatchObject({ uid: 0, gid: 0, mode: 0o4750 });
    expect(tree.get("d")).toMatchObject({ uid: 0, gid: 0, mode: 0o2770 });
  });

  test.skipIf(!Bun.which("setpriv"))("not root: device nodes are skipped, the rest is extracted as the user", async () => {
    const dir = scratch();
    chownSync(dir, 65534, 65534);
    const dest = join(dir, "dest");
    mkdirSync(dest);
    chownSync(dest, 65534, 65534);
    const src = join(dir, "a.tar");
    renameSync(tarball(), src);
    chownSync(src, 65534, 65534);
    const script = `import { extractTar } from ${JSON.stringify(join(import.meta.dir, "../../src/rootfs/tar.ts"))};
await extractTar(${JSON.stringify(src)}, ${JSON.stringify(dest)});`;
    run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", script], { cwd: dir });
    const tree = snapshot(dest);
    expect([...tree.keys()].sort()).toEqual(["", "d", "f", "fifo"]);
    expect(tree.get("f")).toMatchObject({ uid: 65534, gid: 65534, mode: 0o4750 });
    expect(tree.get("fifo")).toMatchObject({ type: "fifo", uid: 65534, mode: 0o640 });
  });
});

test("makedev matches the kernel's encoding", () => {
  expect(makedev(8, 1)).toBe(0x801n);
  expect(makedev(1, 3)).toBe(0x103n);
  // values from glibc's makedev (Python's os.makedev)
  expect(makedev(300, 70000)).toBe(0x11112c70n);
  expect(makedev(0x12345, 0xabcdef)).toBe(0x1200abcd345efn);
});

// ---------------------------------------------------------------------------

describe("memory", () => {
  // The child measures its own peak RSS (VmHWM) around the extraction, so the
  // numbers are not blurred by the test runner.
  const measure = (tarball: string, dest: string, env: Record<string, string | undefined>): number => {
    const script = `import { readFileSync } from "node:fs";
import { extractTar } from ${JSON.stringify(join(import.meta.dir, "../../src/rootfs/tar.ts"))};
const hwm = () => Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]) * 1024;
const before = hwm();
await extractTar(${JSON.stringify(tarball)}, ${JSON.stringify(dest)});
console.log(JSON.stringify({ before, after: hwm() }));`;
    const out = run([process.execPath, "-e", script], { env: env as Record<string, string> });
    const { before, after } = JSON.parse(out) as { before: number; after: number };
    return after - before;
  };

  test("a 300 MB file is streamed: peak RSS grows by far less than its size", () => {
    const dir = scratch();
    sh("truncate -s 300M big && tar -cf big.tar big && rm big && gzip -1 -c big.tar > big.tar.gz && zstd -q -1 -c big.tar > big.tar.zst", dir);
    const noZstd = { ...process.env, PATH: "/nonexistent" };
    for (const [name, env] of [
      ["big.tar", process.env],
      ["big.tar.gz", process.env],
      ["big.tar.zst", process.env],
      ["big.tar.zst", noZstd],
    ] as const) {
      const dest = join(dir, "dest");
      mkdirSync(dest);
      const growth = measure(join(dir, name), dest, env);
      console.log(`peak RSS growth extracting ${name}${env === noZstd ? " (zstd in process)" : ""}: ${(growth / 2 ** 20).toFixed(1)} MiB`);
      expect(lstatSync(join(dest, "big")).size).toBe(300 * 2 ** 20);
      expect(growth).toBeLessThan(64 * 2 ** 20);
      rmSync(dest, { recursive: true });
    }
  }, 180_000);
});

// ---------------------------------------------------------------------------

if (!existsSync(MINBASE)) console.log(`skipping the minbase comparison: no ${MINBASE} (see bun bench/tar.ts for how to build it)`);

test.skipIf(!isRoot || !existsSync(MINBASE))(
  `a real rootfs (${MINBASE}) extracts exactly as with GNU tar`,
  async () => {
    const tree = await expectSameAsGnu(MINBASE);
    expect(tree.size).toBeGreaterThan(1000);
  },
  180_000,
);
