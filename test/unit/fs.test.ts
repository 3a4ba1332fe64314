/**
 * src/native/fs.ts against node:fs: the same calls on the same real files give
 * the same results, and the same errors (code, errno, syscall, path, message).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as node from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ours from "../../src/native/fs.ts";

let dir: string;

beforeAll(() => {
  dir = node.mkdtempSync(join(tmpdir(), "nsbox-fs-"));
  node.writeFileSync(join(dir, "file"), "hello\n");
  node.mkdirSync(join(dir, "sub/deeper"), { recursive: true });
  node.writeFileSync(join(dir, "sub/deeper/x"), "x");
  node.symlinkSync("file", join(dir, "link"));
  node.symlinkSync("missing", join(dir, "dangling"));
  node.symlinkSync("sub", join(dir, "dirlink"));
});

afterAll(() => node.rmSync(dir, { recursive: true, force: true }));

/** What a call threw, in the fields nsbox reads. */
function thrown(f: () => unknown): Record<string, unknown> | "no error" {
  try {
    f();
    return "no error";
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { dest?: string };
    return { message: err.message, code: err.code, errno: err.errno, syscall: err.syscall, path: err.path, dest: err.dest };
  }
}

describe("the same errors as node:fs", () => {
  const cases: [string, (fs: typeof ours) => unknown][] = [
    ["readFileSync of a missing file", (fs) => fs.readFileSync(join(dir, "nope"))],
    ["readFileSync of a directory", (fs) => fs.readFileSync(dir)],
    ["readFileSync through a file", (fs) => fs.readFileSync(join(dir, "file/x"))],
    ["openSync missing", (fs) => fs.openSync(join(dir, "nope"), "r")],
    ["mkdirSync existing", (fs) => fs.mkdirSync(dir)],
    ["mkdirSync under a missing parent", (fs) => fs.mkdirSync(join(dir, "a/b"))],
    ["mkdirSync recursive through a file", (fs) => fs.mkdirSync(join(dir, "file/a/b"), { recursive: true })],
    ["mkdirSync recursive over a file", (fs) => fs.mkdirSync(join(dir, "file"), { recursive: true })],
    ["rmdirSync of a non-empty directory", (fs) => fs.rmdirSync(join(dir, "sub"))],
    ["rmdirSync missing", (fs) => fs.rmdirSync(join(dir, "nope"))],
    ["unlinkSync of a directory", (fs) => fs.unlinkSync(join(dir, "sub"))],
    ["unlinkSync missing", (fs) => fs.unlinkSync(join(dir, "nope"))],
    ["renameSync missing", (fs) => fs.renameSync(join(dir, "nope"), join(dir, "nope2"))],
    ["symlinkSync over a file", (fs) => fs.symlinkSync("x", join(dir, "file"))],
    ["readlinkSync of a file", (fs) => fs.readlinkSync(join(dir, "file"))],
    ["readlinkSync missing", (fs) => fs.readlinkSync(join(dir, "nope"))],
    ["readdirSync missing", (fs) => fs.readdirSync(join(dir, "nope"))],
    ["readdirSync of a file", (fs) => fs.readdirSync(join(dir, "file"))],
    ["statSync missing", (fs) => fs.statSync(join(dir, "nope"))],
    ["statSync dangling", (fs) => fs.statSync(join(dir, "dangling"))],
    ["lstatSync missing", (fs) => fs.lstatSync(join(dir, "nope"))],
    ["fstatSync of a closed fd", (fs) => fs.fstatSync(987654)],
    ["closeSync of a closed fd", (fs) => fs.closeSync(987654)],
    ["readSync of a closed fd", (fs) => fs.readSync(987654, Buffer.alloc(4))],
    ["writeSync of a closed fd", (fs) => fs.writeSync(987654, "x")],
    ["accessSync missing", (fs) => fs.accessSync(join(dir, "nope"))],
    ["statfsSync missing", (fs) => fs.statfsSync(join(dir, "nope"))],
    ["rmSync missing", (fs) => fs.rmSync(join(dir, "nope"))],
    ["rmSync missing, force", (fs) => fs.rmSync(join(dir, "nope"), { force: true })],
    ["chownSync missing", (fs) => fs.chownSync(join(dir, "nope"), 0, 0)],
    ["chmodSync missing", (fs) => fs.chmodSync(join(dir, "nope"), 0o644)],
    ["writeFileSync under a missing parent", (fs) => fs.writeFileSync(join(dir, "nope/x"), "a")],
    ["existsSync never throws", (fs) => [fs.existsSync(join(dir, "nope")), fs.existsSync(join(dir, "file")), fs.existsSync(join(dir, "dangling"))]],
  ];
  for (const [name, f] of cases) {
    test(name, () => {
      expect(thrown(() => f(ours))).toEqual(thrown(() => f(node as unknown as typeof ours)));
    });
  }
  test("a path with a NUL byte is refused before any system call", () => {
    expect((thrown(() => ours.readFileSync(`${dir}/file\0x`)) as { code: string }).code).toBe("ERR_INVALID_ARG_VALUE");
    expect(ours.existsSync(`${dir}/file\0x`)).toBe(false);
  });
});

describe("the same results as node:fs", () => {
  test("readFileSync as text and bytes, across a 4 KiB boundary and from /proc", () => {
    const big = join(dir, "big");
    node.writeFileSync(big, Buffer.alloc(70_000, 7));
    expect(ours.readFileSync(big)).toEqual(node.readFileSync(big));
    expect(ours.readFileSync(join(dir, "file"), "utf8")).toBe("hello\n");
    expect(ours.readFileSync("/proc/self/status", "utf8").startsWith("Name:")).toBe(true);
    expect(ours.readFileSync("/proc/self/mountinfo", "utf8").length).toBeGreaterThan(0);
    const fd = node.openSync(join(dir, "file"), "r");
    expect(ours.readFileSync(fd, "utf8")).toBe("hello\n");
    expect(node.fstatSync(fd).isFile()).toBe(true); // left open
    node.closeSync(fd);
  });

  test("appendFileSync creates, then appends", () => {
    const f = join(dir, "app");
    ours.appendFileSync(f, "a\n");
    ours.appendFileSync(f, "b\n");
    expect(node.readFileSync(f, "utf8")).toBe("a\nb\n");
  });

  test("writeFileSync creates with the mode (less the umask) and truncates", () => {
    const f = join(dir, "w");
    ours.writeFileSync(f, "long content", { mode: 0o600 });
    ours.writeFileSync(f, "short");
    expect(node.readFileSync(f, "utf8")).toBe("short");
    expect(node.statSync(f).mode & 0o777).toBe(0o600);
    ours.writeFileSync(f, Buffer.from([1, 2, 3]));
    expect([...node.readFileSync(f)]).toEqual([1, 2, 3]);
  });

  test("writeFileSync of strings around the scratch buffer's 16 KiB, ASCII and multi-byte, as node:fs writes them", () => {
    const f = join(dir, "s");
    const cases = [
      "a".repeat(16384),
      "a".repeat(16385),
      "a".repeat(70_000),
      `${"a".repeat(16382)}é`, // fits in UTF-16 units, not in bytes: the partial encoding falls back
      `${"é".repeat(9000)}\u{1F600}`,
      "ü".repeat(8192),
    ];
    for (const text of cases) {
      ours.writeFileSync(f, text);
      expect(node.readFileSync(f).equals(Buffer.from(text, "utf8"))).toBe(true);
    }
  });

  test("openSync is close-on-exec, with r, w and a", () => {
    for (const flag of ["r", "w", "a"] as const) {
      const fd = ours.openSync(join(dir, "o"), flag === "r" ? "a" : flag);
      expect(node.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8")).toMatch(/flags:\s+0[0-7]*2[0-7]{6}\n/);
      ours.closeSync(fd);
    }
    const fd = ours.openSync(join(dir, "o"), "a");
    ours.writeSync(fd, "ab");
    ours.writeSync(fd, "cd");
    ours.closeSync(fd);
    expect(node.readFileSync(join(dir, "o"), "utf8")).toBe("abcd");
    const dirfd = ours.openSync(dir, ours.constants.O_RDONLY | ours.constants.O_DIRECTORY);
    expect(ours.fstatSync(dirfd).isDirectory()).toBe(true);
    ours.closeSync(dirfd);
  });

  test("readSync and writeSync with offsets and positions", () => {
    const f = join(dir, "rw");
    node.writeFileSync(f, "0123456789");
    const fd = ours.openSync(f, "r");
    const b = Buffer.alloc(6, 0x2e);
    expect(ours.readSync(fd, b, 2, 3, null)).toBe(3);
    expect(b.toString()).toBe("..012.");
    expect(ours.readSync(fd, b, 0, 2, 8)).toBe(2);
    expect(b.toString()).toBe("89012.");
    ours.closeSync(fd);
    const w = ours.openSync(f, "w");
    expect(ours.writeSync(w, Buffer.from("abcdef"), 1, 3)).toBe(3);
    ours.closeSync(w);
    expect(node.readFileSync(f, "utf8")).toBe("bcd");
  });

  test("stat, lstat and fstat: the same fields", () => {
    const fields = (s: object) => {
      const o = s as Record<string, unknown> & node.Stats;
      const kinds = ["isFile", "isDirectory", "isSymbolicLink", "isBlockDevice", "isCharacterDevice", "isFIFO", "isSocket"] as const;
      return {
        dev: o.dev,
        ino: o.ino,
        mode: o.mode,
        nlink: o.nlink,
        uid: o.uid,
        gid: o.gid,
        rdev: o.rdev,
        size: o.size,
        blocks: o.blocks,
        mtimeMs: o.mtimeMs,
        kinds: kinds.map((k) => o[k]()),
      };
    };
    for (const f of [join(dir, "file"), join(dir, "link"), dir, "/dev/null", "/proc/self/ns/net", "/"]) {
      expect(fields(ours.statSync(f))).toEqual(fields(node.statSync(f)));
      expect(fields(ours.lstatSync(f))).toEqual(fields(node.lstatSync(f)));
      const fd = node.openSync(f, "r");
      expect(fields(ours.fstatSync(fd))).toEqual(fields(node.fstatSync(fd)));
      node.closeSync(fd);
    }
  });

  test("statfsSync's type, readlinkSync, realpathSync, accessSync", () => {
    for (const f of ["/", "/proc", "/sys", dir]) expect(ours.statfsSync(f).type).toBe(Number(node.statfsSync(f).type));
    expect(ours.readlinkSync(join(dir, "link"))).toBe("file");
    for (const f of [join(dir, "link"), join(dir, "dirlink/deeper/../deeper"), `${dir}/./sub/`, "/proc/self/..", "."]) {
      expect(ours.realpathSync(f)).toBe(node.realpathSync(f));
    }
    expect(thrown(() => ours.accessSync(join(dir, "file"), ours.constants.R_OK | ours.constants.W_OK))).toBe("no error");
  });

  test("readdirSync: the same names, in the directory's order", () => {
    for (const d of [dir, "/proc/self/fd/..", "/dev", "/"]) expect(ours.readdirSync(d)).toEqual(node.readdirSync(d));
    const many = join(dir, "many");
    node.mkdirSync(many);
    for (let i = 0; i < 1500; i++) node.writeFileSync(join(many, `entry-with-a-longer-name-${i}`), "");
    expect(ours.readdirSync(many)).toEqual(node.readdirSync(many));
  });

  test("readdirSync withFileTypes: the same names and types (files, directories, links, devices, a FIFO)", () => {
    const kinds = (ds: { name: string; isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }[]) =>
      ds.map((d) => [d.name, d.isFile(), d.isDirectory(), d.isSymbolicLink()]);
    node.mkdirSync(join(dir, "typed"));
    node.writeFileSync(join(dir, "typed/f"), "");
    node.mkdirSync(join(dir, "typed/d"));
    node.symlinkSync("f", join(dir, "typed/l"));
    expect(Bun.spawnSync(["mkfifo", join(dir, "typed/p")]).exitCode).toBe(0);
    for (const d of [dir, join(dir, "typed"), "/dev", "/proc/self"])
      expect(kinds(ours.readdirSync(d, { withFileTypes: true }))).toEqual(kinds(node.readdirSync(d, { withFileTypes: true })));
    expect(ours.readdirSync(join(dir, "typed"), { withFileTypes: true }).map((d) => d.parentPath)).toEqual(
      node.readdirSync(join(dir, "typed"), { withFileTypes: true }).map((d) => d.parentPath),
    );
  });

  test("fsyncSync: a file's fd, and the same error as node's for a closed one", () => {
    const fd = node.openSync(join(dir, "file"), "r");
    expect(() => ours.fsyncSync(fd)).not.toThrow();
    node.closeSync(fd);
    expect(thrown(() => ours.fsyncSync(fd))).toEqual(thrown(() => node.fsyncSync(fd)));
  });

  test("a directory removed while it is read: an error for readdir (as node's), its end for rm (a concurrent rm -rf)", () => {
    const d = join(dir, "dead");
    node.mkdirSync(d);
    node.writeFileSync(join(d, "x"), "");
    const fd = node.openSync(d, "r");
    try {
      node.rmSync(d, { recursive: true });
      expect(ours.entries(fd, d, true)).toEqual([]);
      expect((thrown(() => ours.entries(fd, d)) as { code: string; syscall: string }).code).toBe("ENOENT");
    } finally {
      node.closeSync(fd);
    }
  });

  test("mkdirSync recursive returns the first directory made, and applies the mode to each", () => {
    const base = join(dir, "m");
    expect(ours.mkdirSync(join(base, "a/b/"), { recursive: true, mode: 0o700 })).toBe(base);
    expect(node.statSync(join(base, "a")).mode & 0o777).toBe(0o700);
    expect(ours.mkdirSync(join(base, "a/b"), { recursive: true })).toBeUndefined();
    expect(ours.mkdirSync(join(base, "c"), { mode: 0o711 })).toBeUndefined();
    expect(node.statSync(join(base, "c")).mode & 0o777).toBe(0o711);
  });

  test("rmSync recursive removes a tree without following its links; renameSync, symlinkSync, chmodSync, chownSync", () => {
    const t = join(dir, "tree");
    node.mkdirSync(join(t, "a/b/c"), { recursive: true });
    node.writeFileSync(join(t, "a/b/c/f"), "f");
    node.symlinkSync(join(dir, "sub"), join(t, "a/out")); // to a directory outside: must survive
    node.symlinkSync(join(dir, "sub"), join(t, "dirlink"));
    ours.rmSync(t, { recursive: true, force: true });
    expect(node.existsSync(t)).toBe(false);
    expect(node.existsSync(join(dir, "sub/deeper/x"))).toBe(true);
    expect((thrown(() => ours.rmSync(join(dir, "sub"))) as { code: string }).code).toBe("ERR_FS_EISDIR");
    ours.writeFileSync(join(dir, "r1"), "1");
    ours.renameSync(join(dir, "r1"), join(dir, "r2"));
    expect(node.readFileSync(join(dir, "r2"), "utf8")).toBe("1");
    ours.symlinkSync("r2", join(dir, "r3"));
    expect(node.readlinkSync(join(dir, "r3"))).toBe("r2");
    ours.rmSync(join(dir, "r3"));
    expect(node.existsSync(join(dir, "r2"))).toBe(true);
    ours.chmodSync(join(dir, "r2"), 0o640);
    expect(node.statSync(join(dir, "r2")).mode & 0o777).toBe(0o640);
    ours.chownSync(join(dir, "r2"), 12345, 23456);
    expect([node.statSync(join(dir, "r2")).uid, node.statSync(join(dir, "r2")).gid]).toEqual([12345, 23456]);
  });
});

describe("readTextIfThere and readlinkIfThere: undefined where node:fs would throw, no Error made", () => {
  test("a file's text, or undefined when it cannot be opened", () => {
    expect(ours.readTextIfThere(join(dir, "file"))).toBe(node.readFileSync(join(dir, "file"), "utf8"));
    expect(ours.readTextIfThere(join(dir, "link"))).toBe("hello\n");
    expect(ours.readTextIfThere(`/proc/${process.pid}/stat`)).toStartWith(`${process.pid} (`);
    for (const p of [join(dir, "nope"), join(dir, "dangling"), join(dir, "file/x"), "/proc/4194305/stat", `${dir}/a\0b`, "x".repeat(5000)])
      expect(ours.readTextIfThere(p)).toBeUndefined();
  });

  test("reading what opened but cannot be read still throws, as readFileSync does", () => {
    expect(thrown(() => ours.readTextIfThere(dir))).toEqual(thrown(() => node.readFileSync(dir)));
  });

  test("a link's target, or undefined when there is no link", () => {
    expect(ours.readlinkIfThere(join(dir, "link"))).toBe("file");
    expect(ours.readlinkIfThere(join(dir, "dangling"))).toBe("missing");
    for (const p of [join(dir, "nope"), join(dir, "file"), `${dir}/a\0b`]) expect(ours.readlinkIfThere(p)).toBeUndefined();
  });

  test("no Error is constructed on the undefined path", () => {
    const real = globalThis.Error;
    let made = 0;
    globalThis.Error = new Proxy(real, {
      construct: (t, a, n) => {
        made++;
        return Reflect.construct(t, a, n);
      },
      apply: (t, self, a) => {
        made++;
        return Reflect.apply(t, self, a);
      },
    });
    try {
      ours.readTextIfThere(join(dir, "nope"));
      ours.readlinkIfThere(join(dir, "nope"));
      expect(made).toBe(0);
      expect(thrown(() => ours.readFileSync(join(dir, "nope")))).not.toBe("no error");
      expect(made).toBeGreaterThan(0); // the proxy sees what readFileSync makes
    } finally {
      globalThis.Error = real;
    }
  });
});
