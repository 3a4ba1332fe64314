/**
 * extractTar for image layers: overlay whiteouts, forced formats, progress.
 * Archives are made by GNU tar from trees built on disk. Run as root (device
 * nodes, trusted.* xattrs); nothing is mounted.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lgetxattr } from "../../src/native/xattr.ts";
import { extractTar, TarError } from "../../src/rootfs/tar.ts";

const isRoot = process.getuid?.() === 0;

const scratchDirs: string[] = [];
afterAll(() => {
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), "nsbox-tar-layers-"));
  scratchDirs.push(d);
  return d;
}

function sh(script: string, cwd: string): string {
  const r = Bun.spawnSync(["bash", "-euo", "pipefail", "-c", script], { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${script} failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** A tarball of the tree that `script` makes in a fresh directory. */
function tarOf(script: string, tarFlags = ""): string {
  const dir = scratch();
  mkdirSync(join(dir, "tree"));
  sh(script, join(dir, "tree"));
  sh(`tar ${tarFlags} -cf ../layer.tar .`, join(dir, "tree"));
  return join(dir, "layer.tar");
}

function freshDest(): string {
  const d = join(scratch(), "dest");
  mkdirSync(d);
  return d;
}

async function refusal(tarball: string, opts: Parameters<typeof extractTar>[2]): Promise<string> {
  const err = await extractTar(tarball, freshDest(), opts).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TarError);
  return (err as Error).message;
}

describe("whiteouts", () => {
  const layer = (): string =>
    tarOf("mkdir a c d && touch a/.wh.b a/keep c/.wh..wh..opq c/new .wh.top d/.wh..wh.plnk && mkdir -p e/f && touch e/f/.wh..wh..opq");

  test.skipIf(!isRoot)('"overlay": .wh.NAME becomes a 0/0 char device, .wh..wh..opq the opaque xattr', async () => {
    const dest = freshDest();
    await extractTar(layer(), dest, { whiteouts: "overlay" });
    for (const path of ["a/b", "top"]) {
      const st = lstatSync(join(dest, path));
      expect(st.isCharacterDevice()).toBe(true);
      expect(st.rdev).toBe(0);
      expect([st.uid, st.gid]).toEqual([0, 0]);
    }
    expect(lgetxattr(join(dest, "c"), "trusted.overlay.opaque")?.toString()).toBe("y");
    expect(lgetxattr(join(dest, "e/f"), "trusted.overlay.opaque")?.toString()).toBe("y");
    expect(lgetxattr(join(dest, "a"), "trusted.overlay.opaque")).toBeNull();
    // nothing named .wh.* is written, aufs metadata included
    expect(sh("find . -name '.wh.*'", dest)).toBe("");
    expect(readdirSync(join(dest, "d"))).toEqual([]);
    expect(readdirSync(join(dest, "c"))).toEqual(["new"]);
    expect(readdirSync(join(dest, "a")).sort()).toEqual(["b", "keep"]);
  });

  test('"keep" (the default) extracts .wh.* entries as plain files', async () => {
    const dest = freshDest();
    await extractTar(layer(), dest);
    expect(statSync(join(dest, "a/.wh.b")).isFile()).toBe(true);
    expect(statSync(join(dest, "c/.wh..wh..opq")).isFile()).toBe(true);
  });

  test.skipIf(!isRoot)("an opaque marker whose directory is not in the archive makes it", async () => {
    const dir = scratch();
    sh("mkdir -p t/x && touch t/x/.wh..wh..opq && tar -C t -cf l.tar x/.wh..wh..opq", dir);
    const dest = freshDest();
    await extractTar(join(dir, "l.tar"), dest, { whiteouts: "overlay" });
    expect(statSync(join(dest, "x")).isDirectory()).toBe(true);
    expect(lgetxattr(join(dest, "x"), "trusted.overlay.opaque")?.toString()).toBe("y");
  });

  test("whiteouts of nothing, of . or .., and entries below a whiteout are refused", async () => {
    for (const name of [".wh.", ".wh..", ".wh..."]) {
      const tarball = tarOf(`mkdir a && touch 'a/${name}'`);
      expect(await refusal(tarball, { whiteouts: "overlay" })).toMatch(
        /^refusing entry "\.\/a\/\.wh\.\.{0,2}": it is a whiteout of ".{0,2}", which names no file$/,
      );
    }
    const below = tarOf("mkdir -p a/.wh.b && touch a/.wh.b/c");
    expect(await refusal(below, { whiteouts: "overlay" })).toContain("a parent of it is a whiteout");
  });

  test.skipIf(!isRoot)("a whiteout through a symlink from the archive is refused", async () => {
    // a/.wh.passwd cannot exist on disk below a symlink: renamed into place in the archive
    const dir = scratch();
    sh("mkdir t && ln -s /etc t/a && touch t/.wh.passwd && tar -C t -cf l.tar a .wh.passwd --transform 's,^\\.wh\\.passwd$,a/.wh.passwd,'", dir);
    expect(await refusal(join(dir, "l.tar"), { whiteouts: "overlay" })).toBe('refusing entry "a/.wh.passwd": its parent "a" is a symlink from the archive');
  });
});

describe("formats and progress", () => {
  const blob = (): { dir: string; tar: string } => {
    const tar = tarOf("head -c 3000000 /dev/urandom > big && mkdir d && echo hi > d/f");
    const dir = join(tar, "..");
    sh("gzip -c layer.tar > gz-blob && zstd -q -c layer.tar > zst-blob && cp layer.tar tar-blob", dir);
    return { dir, tar };
  };

  test("blobs without a suffix: sniffed, or forced with format", async () => {
    const { dir } = blob();
    for (const [name, format] of [
      ["gz-blob", "gzip"],
      ["zst-blob", "zstd"],
      ["tar-blob", "tar"],
    ] as const) {
      for (const f of ["auto", format] as const) {
        const dest = freshDest();
        await extractTar(join(dir, name), dest, { format: f });
        expect(statSync(join(dest, "big")).size).toBe(3000000);
      }
    }
  });

  test("a forced format that does not match is a clear error", async () => {
    const { dir } = blob();
    expect(await refusal(join(dir, "tar-blob"), { format: "gzip" })).toContain("gzip data is corrupt");
    expect(await refusal(join(dir, "gz-blob"), { format: "tar" })).toContain("not a tar archive");
  });

  test("zstd: truncated anywhere is refused; several frames, skippable frames, no checksum are fine", async () => {
    const { dir, tar } = blob();
    // two frames (the tar split at an odd offset), one without checksum, a skippable frame between
    sh(
      `head -c 1234567 layer.tar | zstd -q -c > multi.zst && printf "\\x50\\x2a\\x4d\\x18\\x03\\x00\\x00\\x00abc" >> multi.zst && tail -c +1234568 layer.tar | zstd -q --no-check -c >> multi.zst`,
      dir,
    );
    const dest = freshDest();
    await extractTar(join(dir, "multi.zst"), dest);
    expect(statSync(join(dest, "big")).size).toBe(3000000);
    const size = statSync(join(dir, "zst-blob")).size;
    for (const cut of [3, 9, 13, 1000, Math.floor(size / 2), size - 4, size - 1]) {
      sh(`head -c ${cut} zst-blob > cut.zst`, dir);
      expect(await refusal(join(dir, "cut.zst"), {})).toMatch(/zstd data is corrupt|not a tar archive|truncated/);
    }
    expect(tar).toBeTruthy();
  });

  test("onProgress: compressed bytes, increasing, at most every ~64 KiB, ending at the file size", async () => {
    const { dir } = blob();
    for (const name of ["gz-blob", "zst-blob", "tar-blob"]) {
      const seen: number[] = [];
      await extractTar(join(dir, name), freshDest(), { onProgress: (n) => seen.push(n) });
      const size = statSync(join(dir, name)).size;
      expect(seen.length).toBeGreaterThan(0);
      expect(seen[seen.length - 1]).toBe(size);
      for (let i = 1; i < seen.length; i++) expect((seen[i] as number) - (seen[i - 1] as number)).toBeGreaterThanOrEqual(i === seen.length - 1 ? 1 : 65536);
      expect(seen.length).toBeLessThanOrEqual(Math.ceil(size / 65536) + 1);
    }
  });

  test("dest may be a freshly made empty directory, and nothing else", async () => {
    const { tar } = blob();
    const dest = freshDest();
    await extractTar(tar, dest);
    writeFileSync(join(dest, "..", "x"), "");
    expect(await extractTar(tar, dest).catch((e: Error) => e.message)).toContain("the directory is not empty");
  });
});

describe("xattrs, as GNU tar --xattrs --xattrs-include='*'", () => {
  /** A tree with file capabilities and xattrs in every namespace, archived by GNU tar (pax). */
  const xattrTree = (): { dir: string; tarball: string } => {
    const dir = scratch();
    sh(
      `mkdir -p t/d t/o && cp /bin/true t/ping && chown 1000:1000 t/ping && chmod 4755 t/ping && setcap cap_net_raw=ep t/ping && ln -s ping t/link && touch t/plain
       python3 -c '
import os
os.setxattr("t/ping", "user.note", b"hello")
os.setxattr("t/ping", "user.bin", bytes(range(256)))
os.setxattr("t/plain", "user.empty", b"")
os.setxattr("t/d", "user.dir", b"d")
os.setxattr("t/d", "trusted.t", b"x")
os.setxattr("t/link", "trusted.s", b"s", follow_symlinks=False)
os.setxattr("t/o", "trusted.overlay.opaque", b"y")
'
       tar --xattrs --xattrs-include='*' --format=pax -C t -cf x.tar .`,
      dir,
    );
    return { dir, tarball: join(dir, "x.tar") };
  };

  const expected: [string, string, Buffer][] = [
    ["ping", "user.note", Buffer.from("hello")],
    ["ping", "user.bin", Buffer.from(Array.from({ length: 256 }, (_, i) => i))],
    ["plain", "user.empty", Buffer.alloc(0)],
    ["d", "user.dir", Buffer.from("d")],
    ["d", "trusted.t", Buffer.from("x")],
    ["link", "trusted.s", Buffer.from("s")],
  ];

  test.skipIf(!isRoot)("file capabilities survive chown; user.*, trusted.*, binary and empty values, on files, dirs and symlinks", async () => {
    const { dir, tarball } = xattrTree();
    const gnu = join(dir, "gnu");
    mkdirSync(gnu);
    sh(`tar --xattrs --xattrs-include='*' -xpf x.tar -C gnu`, dir);
    const ours = freshDest();
    await extractTar(tarball, ours);
    expect(sh(`getcap ${join(ours, "ping")}`, dir).trim()).toBe(`${join(ours, "ping")} cap_net_raw=ep`);
    expect(lgetxattr(join(ours, "ping"), "security.capability")).toEqual(lgetxattr(join(gnu, "ping"), "security.capability") as Buffer);
    const st = lstatSync(join(ours, "ping"));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1000, 0o4755]);
    for (const [path, name, value] of expected) {
      expect(lgetxattr(join(gnu, path), name)).toEqual(value);
      expect(lgetxattr(join(ours, path), name)).toEqual(value);
    }
  });

  test.skipIf(!isRoot)("overlayfs's own xattrs from the archive are dropped: a layer must not forge whiteouts", async () => {
    const { tarball } = xattrTree();
    for (const whiteouts of ["keep", "overlay"] as const) {
      const ours = freshDest();
      await extractTar(tarball, ours, { whiteouts });
      expect(lgetxattr(join(ours, "o"), "trusted.overlay.opaque")).toBeNull();
    }
  });

  test("LIBARCHIVE.xattr.* (base64, URL-encoded names), with SCHILY winning for the same name", async () => {
    const dir = scratch();
    const b64 = (s: string): string => Buffer.from(s).toString("base64");
    sh(
      `python3 -c '
import tarfile, io
with tarfile.open("l.tar", "w", format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo("f"); i.size = 2
    i.pax_headers = {"LIBARCHIVE.xattr.user.a%3Db": "${b64("lib")}", "LIBARCHIVE.xattr.user.both": "${b64("lib")}", "SCHILY.xattr.user.both": "schily"}
    t.addfile(i, io.BytesIO(b"hi"))
'`,
      dir,
    );
    const ours = freshDest();
    await extractTar(join(dir, "l.tar"), ours);
    expect(lgetxattr(join(ours, "f"), "user.a=b")?.toString()).toBe("lib");
    expect(lgetxattr(join(ours, "f"), "user.both")?.toString()).toBe("schily");
  });
});
