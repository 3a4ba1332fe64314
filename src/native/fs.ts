/**
 * The file operations nsbox's run, exec and lifecycle paths use, with node:fs's
 * names, arguments and errors (`ENOENT: no such file or directory, open '/x'`,
 * with code, errno, syscall, path), over raw system calls (src/native/syscall.ts).
 *
 * Why not node:fs itself: loading it is 2.2-4.5 ms and ~1.9 MiB at every start
 * (bench/trace-notes.md, issue 14), and it is loaded by any one import anywhere in
 * the code a command runs. The run (a rootfs or a stored image), exec and
 * lifecycle paths and the OCI verbs use this, and test/check-start-imports.ts
 * (make check) keeps node: modules out of their start; work off those paths
 * (pulls, unpacking, tar, logs, a tarball rootfs's cache, `-t`'s relay, OCI
 * tmpcopyup) still uses node:fs where it is simpler.
 *
 * Only the forms nsbox uses: each function throws for an option it does not
 * implement rather than ignoring it. test/unit/fs.test.ts holds each one to
 * node:fs's behaviour.
 */
import { dirname } from "../posixpath.ts";
import { errnoError } from "./errno.ts";
import { AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, addr, cpath, O, sys, utf8Decode as utf8, utf8Encoder } from "./syscall.ts";

const EINTR = 4;
const ENOENT = 2;
const EEXIST = 17;

export const constants = {
  O_RDONLY: O.RDONLY,
  O_WRONLY: O.WRONLY,
  O_RDWR: O.RDWR,
  O_CREAT: O.CREAT,
  O_EXCL: O.EXCL,
  O_TRUNC: O.TRUNC,
  O_APPEND: O.APPEND,
  O_NONBLOCK: O.NONBLOCK,
  O_DIRECTORY: O.DIRECTORY,
  O_NOFOLLOW: O.NOFOLLOW,
  F_OK: 0,
  R_OK: 4,
  W_OK: 2,
  X_OK: 1,
} as const;

/**
 * The address of path as the kernel takes it (see cpath: slot 0 or 1). A NUL
 * inside would cut it short, so it is refused as node refuses it.
 */
function pa(path: string, syscall: string, slot: 0 | 1 = 0): number {
  if (typeof path !== "string") throw new TypeError(`The "path" argument must be of type string. Received ${typeof path}`);
  if (path.includes("\0")) {
    throw Object.assign(new TypeError(`The argument 'path' must be a string without null bytes. Received ${JSON.stringify(path)}`), {
      code: "ERR_INVALID_ARG_VALUE",
    });
  }
  const at = cpath(path, slot);
  if (at < 0) throw errnoError(-at, syscall, path);
  return at;
}

/** r, or the error of a failed call (r = -errno). */
function check(r: number, syscall: string, path?: string, dest?: string): number {
  if (r < 0) throw errnoError(-r, syscall, path, dest);
  return r;
}

const FLAGS: Record<string, number> = {
  r: O.RDONLY,
  "r+": O.RDWR,
  w: O.WRONLY | O.CREAT | O.TRUNC,
  wx: O.WRONLY | O.CREAT | O.TRUNC | O.EXCL,
  "w+": O.RDWR | O.CREAT | O.TRUNC,
  a: O.WRONLY | O.CREAT | O.APPEND,
  "a+": O.RDWR | O.CREAT | O.APPEND,
};

function openFlags(flags: string | number): number {
  const f = typeof flags === "number" ? flags : FLAGS[flags];
  if (f === undefined) throw new TypeError(`open flags "${flags}" are not supported here`);
  return f;
}

/** open(2), close-on-exec (as node's). */
export function openSync(path: string, flags: string | number = "r", mode = 0o666): number {
  const at = pa(path, "open");
  const f = openFlags(flags) | O.CLOEXEC;
  for (;;) {
    const r = sys("openat", AT_FDCWD, at, f, mode);
    if (r !== -EINTR) return check(r, "open", path);
  }
}

export function closeSync(fd: number): void {
  check(sys("close", fd), "close");
}

/** fsync(2): the file's data and metadata on disk before a rename makes it visible. */
export function fsyncSync(fd: number): void {
  let r = sys("fsync", fd);
  while (r === -EINTR) r = sys("fsync", fd);
  check(r, "fsync");
}

/** One read(2) (pread at a position); returns the bytes read, 0 at the end. */
export function readSync(fd: number, buf: Uint8Array, offset = 0, length = buf.length - offset, position: number | null = null): number {
  if (offset < 0 || length < 0 || offset + length > buf.length)
    throw new RangeError(`read of ${length} bytes at ${offset} is outside a buffer of ${buf.length}`);
  if (length === 0) return 0;
  return check(readAt(fd, addr(buf) + offset, length, position), "read");
}

function readAt(fd: number, at: number, length: number, position: number | null): number {
  for (;;) {
    const r = position === null ? sys("read", fd, at, length) : sys("pread64", fd, at, length, position);
    if (r !== -EINTR) return r;
  }
}

/**
 * write(2). A buffer: one write of `length` bytes from `offset` (the caller loops,
 * as with node). A string: all of it, in as many writes as it takes (a caller
 * could not resume a string at a byte offset); returns its length in bytes.
 */
export function writeSync(fd: number, data: string | Uint8Array, offset?: number, length?: number): number {
  if (typeof data === "string") return writeString(fd, data);
  const off = offset ?? 0;
  const len = length ?? data.length - off;
  if (off < 0 || len < 0 || off + len > data.length) throw new RangeError(`write of ${len} bytes at ${off} is outside a buffer of ${data.length}`);
  if (len === 0) return 0;
  return check(writeAt(fd, addr(data) + off, len), "write");
}

function writeAt(fd: number, at: number, len: number): number {
  for (;;) {
    const r = sys("write", fd, at, len);
    if (r !== -EINTR) return r;
  }
}

/**
 * The scratch buffer of reads and string writes: one, allocated once, its address
 * taken once (taking a fresh buffer's address makes the engine copy it to memory
 * that cannot move: ~10 µs a call in a start's interpreted code).
 */
let scratch = new Uint8Array(0);
let scratchAt = 0;

/**
 * The scratch buffer, made at first use (a start allocates nothing at its modules'
 * top level: `--version` needs none of it). Only Uint8Array, TextEncoder and
 * TextDecoder here, no Buffer: Buffer.from's first call in a process costs ~0.4 ms.
 */
function scratchBuffer(): Uint8Array {
  if (scratch.length === 0) {
    scratch = new Uint8Array(16384);
    scratchAt = 0;
  }
  return scratch;
}

function scratchAddress(): number {
  if (scratchAt === 0) scratchAt = addr(scratchBuffer());
  return scratchAt;
}

function writeString(fd: number, data: string): number {
  // longer than the scratch buffer (UTF-8 takes at least a byte per UTF-16 unit):
  // a buffer of its own, without a first, partial encoding into the scratch one
  const into = data.length > scratchBuffer().length ? undefined : utf8Encoder().encodeInto(data, scratch);
  const bytes = into === undefined || into.read < data.length ? utf8Encoder().encode(data) : scratch;
  const at = bytes === scratch ? scratchAddress() : addr(bytes);
  const len = bytes === scratch ? (into?.written ?? 0) : bytes.length;
  for (let off = 0; off < len; ) off += check(writeAt(fd, at + off, len - off), "write");
  return len;
}

type Encoding = "utf8" | "utf-8";

/** The whole file, read to its end (files in /proc and /sys report no size); a number: that open fd, left open. */
export function readFileSync(path: string | number): Buffer;
export function readFileSync(path: string | number, encoding: Encoding | { encoding: Encoding }): string;
export function readFileSync(path: string | number, encoding?: Encoding | { encoding: Encoding }): string | Buffer {
  const data = readWhole(path);
  return encoding ? utf8(data) : Buffer.from(data);
}

/**
 * The file's text, or undefined when it cannot be opened (not there, a process
 * gone from /proc): for the paths where "not there" is the usual answer, since
 * readFileSync's error would make an Error, and a program's first Error costs
 * Bun ~0.7-1.2 MiB of peak RSS (its stack-trace machinery: bench/trace-notes.md,
 * "eighth stop"). A failed read of an opened file still throws.
 */
export function readTextIfThere(path: string): string | undefined {
  if (path.includes("\0")) return undefined;
  const at = cpath(path);
  if (at < 0) return undefined;
  let fd: number;
  do fd = sys("openat", AT_FDCWD, at, O.RDONLY | O.CLOEXEC, 0);
  while (fd === -EINTR);
  if (fd < 0) return undefined;
  try {
    return utf8(readWhole(fd));
  } finally {
    sys("close", fd);
  }
}

/** The link's target, or undefined when there is none (as readTextIfThere: no Error made). */
export function readlinkIfThere(path: string): string | undefined {
  if (path.includes("\0")) return undefined;
  const r = readlinkAt(AT_FDCWD, path);
  return typeof r === "number" ? undefined : r;
}

/** readFileSync's bytes as a Uint8Array of their own (no Buffer: see scratchBuffer). */
export function readBytesSync(path: string | number): Uint8Array {
  return readWhole(path).slice();
}

/** The file's bytes in the scratch buffer (valid until its next use). */
function readWhole(path: string | number): Uint8Array {
  const fd = typeof path === "number" ? path : openSync(path, "r");
  let used = 0;
  scratchBuffer();
  try {
    for (;;) {
      if (used === scratch.length) {
        const bigger = new Uint8Array(scratch.length * 4);
        bigger.set(scratch);
        scratch = bigger;
        scratchAt = 0;
      }
      const n = check(readAt(fd, scratchAddress() + used, scratch.length - used, null), "read");
      if (n === 0) break;
      used += n;
    }
  } finally {
    if (fd !== path) sys("close", fd);
  }
  const data = scratch.subarray(0, used);
  // a large file's buffer is not kept for the small ones that follow
  if (scratch.length > 1 << 20) {
    scratch = new Uint8Array(0);
    scratchAt = 0;
  }
  return data;
}

/** Creates or truncates the file (mode for a new one, default 0o666 less the umask) and writes all of data. */
export function writeFileSync(path: string, data: string | Uint8Array, options?: { mode?: number; flag?: "w" | "wx" | "a" }): void {
  const fd = openSync(path, options?.flag ?? "w", options?.mode ?? 0o666);
  try {
    if (typeof data === "string") writeString(fd, data);
    else for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
  } finally {
    sys("close", fd);
  }
}

/** Appends data, creating the file (mode 0o666 less the umask) if needed. */
export function appendFileSync(path: string, data: string): void {
  writeFileSync(path, data, { flag: "a" });
}

/** access(2) with F_OK: never throws. */
export function existsSync(path: string): boolean {
  if (typeof path !== "string" || path.includes("\0")) return false;
  const at = cpath(path);
  return at > 0 && sys("faccessat", AT_FDCWD, at, 0) === 0;
}

export function accessSync(path: string, mode: number = constants.F_OK): void {
  check(sys("faccessat", AT_FDCWD, pa(path, "access"), mode), "access", path);
}

function mkdirOnce(path: string, mode: number): number {
  return sys("mkdirat", AT_FDCWD, pa(path, "mkdir"), mode);
}

/**
 * mkdir(2). With recursive, the missing parents too (each with mode), no error
 * if the directory exists, and the first directory created is returned.
 */
export function mkdirSync(path: string, options?: { recursive?: boolean; mode?: number } | number): string | undefined {
  const mode = (typeof options === "number" ? options : options?.mode) ?? 0o777;
  const recursive = typeof options === "object" && !!options.recursive;
  const r = mkdirOnce(path, mode);
  if (r === 0) return recursive ? path : undefined;
  if (!recursive) throw errnoError(-r, "mkdir", path);
  if (r === -EEXIST) {
    if (statOrUndefined(path)?.isDirectory()) return undefined;
    throw errnoError(EEXIST, "mkdir", path);
  }
  if (r !== -ENOENT) throw errnoError(-r, "mkdir", path);
  const parent = dirname(path);
  if (parent === path || parent === ".") throw errnoError(ENOENT, "mkdir", path);
  const first = mkdirSync(parent, { recursive: true, mode });
  const again2 = mkdirOnce(path, mode);
  if (again2 !== 0 && !(again2 === -EEXIST && statOrUndefined(path)?.isDirectory())) throw errnoError(-again2, "mkdir", path);
  return first ?? path;
}

export function rmdirSync(path: string): void {
  check(sys("unlinkat", AT_FDCWD, pa(path, "rmdir"), AT_REMOVEDIR), "rmdir", path);
}

export function unlinkSync(path: string): void {
  check(sys("unlinkat", AT_FDCWD, pa(path, "unlink"), 0), "unlink", path);
}

export function renameSync(from: string, to: string): void {
  check(sys("renameat2", AT_FDCWD, pa(from, "rename"), AT_FDCWD, pa(to, "rename", 1), 0), "rename", from, to);
}

export function symlinkSync(target: string, path: string): void {
  check(sys("symlinkat", pa(target, "symlink"), AT_FDCWD, pa(path, "symlink", 1)), "symlink", target, path);
}

function readlinkAt(dirfd: number, path: string): number | string {
  const out = scratchBuffer();
  const n = sys("readlinkat", dirfd, pa(path, "readlink"), scratchAddress(), out.length);
  return n < 0 ? n : utf8(out.subarray(0, n));
}

export function readlinkSync(path: string): string {
  const r = readlinkAt(AT_FDCWD, path);
  if (typeof r === "number") throw errnoError(-r, "readlink", path);
  return r;
}

/** The canonical absolute path (symbolic links, `.` and `..` resolved), as the kernel names the opened file. */
export function realpathSync(path: string): string {
  const fd = check(sys("openat", AT_FDCWD, pa(path, "lstat"), O.PATH | O.CLOEXEC), "lstat", path);
  try {
    const r = readlinkAt(AT_FDCWD, `/proc/self/fd/${fd}`);
    if (typeof r === "number") throw errnoError(-r, "realpath", path);
    return r;
  } finally {
    sys("close", fd);
  }
}

export function chownSync(path: string, uid: number, gid: number): void {
  check(sys("fchownat", AT_FDCWD, pa(path, "chown"), uid, gid, 0), "chown", path);
}

export function chmodSync(path: string, mode: number): void {
  check(sys("fchmodat", AT_FDCWD, pa(path, "chmod"), mode), "chmod", path);
}

// ---- stat ----

const S_IFMT = 0o170000;

/** node's Stats, from statx(2). */
export class Stats {
  constructor(
    readonly dev: number,
    readonly ino: number,
    readonly mode: number,
    readonly nlink: number,
    readonly uid: number,
    readonly gid: number,
    readonly rdev: number,
    readonly size: number,
    readonly blksize: number,
    readonly blocks: number,
    readonly atimeMs: number,
    readonly mtimeMs: number,
    readonly ctimeMs: number,
    readonly birthtimeMs: number,
  ) {}
  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000;
  }
  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === 0o060000;
  }
  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === 0o020000;
  }
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === 0o010000;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === 0o140000;
  }
}

const STATX_BASIC_STATS = 0x7ff;
const STATX_BTIME = 0x800;
// struct statx (256 bytes) as u32 words, made at the first stat
let u32 = new Uint32Array(0);
let statxBufAt = 0;
const statxAt = () => {
  if (statxBufAt === 0) {
    u32 = new Uint32Array(64);
    statxBufAt = addr(u32);
  }
  return statxBufAt;
};

/** glibc's makedev: the dev_t a stat(2) gives, from statx's major and minor. */
function makedev(major: number, minor: number): number {
  return (major & 0xfff) * 256 + (minor & 0xff) + (minor & ~0xff) * 4096 + (major & ~0xfff) * 2 ** 32;
}

function statx(dirfd: number, path: string, flags: number): Stats | number {
  const r = sys("statx", dirfd, pa(path, "stat"), flags, STATX_BASIC_STATS | STATX_BTIME, statxAt());
  if (r < 0) return r;
  // (32-bit halves: no BigInt in a start's interpreted code)
  const u64 = (i: number) => (u32[i] as number) + (u32[i + 1] as number) * 2 ** 32;
  // tv_sec is signed: its high word as an i32 (| 0)
  const ms = (i: number) => ((u32[i] as number) + ((u32[i + 1] as number) | 0) * 2 ** 32) * 1000 + (u32[i + 2] as number) / 1e6;
  return new Stats(
    makedev(u32[34] as number, u32[35] as number),
    u64(8),
    (u32[7] as number) & 0xffff,
    u32[4] as number,
    u32[5] as number,
    u32[6] as number,
    makedev(u32[32] as number, u32[33] as number),
    u64(10),
    u32[1] as number,
    u64(12),
    ms(16),
    ms(28),
    ms(24),
    ms(20),
  );
}

function statOrThrow(dirfd: number, path: string, flags: number, syscall: string, name?: string): Stats {
  const r = statx(dirfd, path, flags);
  if (typeof r === "number") throw errnoError(-r, syscall, name);
  return r;
}

function statOrUndefined(path: string): Stats | undefined {
  const r = statx(AT_FDCWD, path, 0);
  return typeof r === "number" ? undefined : r;
}

export function statSync(path: string): Stats {
  return statOrThrow(AT_FDCWD, path, 0, "stat", path);
}

export function lstatSync(path: string): Stats {
  return statOrThrow(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, "lstat", path);
}

export function fstatSync(fd: number): Stats {
  return statOrThrow(fd, "", AT_EMPTY_PATH, "fstat");
}

/** statfs(2): the filesystem's magic number (type) and sizes. */
export function statfsSync(path: string): { type: number; bsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number } {
  const out = new Uint32Array(30);
  check(sys("statfs", pa(path, "statfs"), addr(out)), "statfs", path);
  // the fields are longs, none negative here: two u32 halves
  const w = (i: number) => (out[2 * i] as number) + (out[2 * i + 1] as number) * 2 ** 32;
  return { type: w(0), bsize: w(1), blocks: w(2), bfree: w(3), bavail: w(4), files: w(5), ffree: w(6) };
}

// ---- directories ----

const DT_DIR = 4;
const DT_REG = 8;
const DT_LNK = 10;

// getdents64's buffer, made at the first directory read (entries() returns before
// any recursion of its callers, so one serves them all)
let dirents = new Uint8Array(0);
let direntAt = 0;
function direntBuffer(): Uint8Array {
  if (dirents.length === 0) {
    dirents = new Uint8Array(32768);
    direntAt = addr(dirents);
  }
  return dirents;
}

/**
 * Each entry of an open directory (not . and ..) with its type (DT_*, 0 when the
 * filesystem does not say). A directory removed while it is read fails with
 * ENOENT; goneIsEmpty (rm's) takes that as its end, as glibc's readdir does.
 */
export function entries(fd: number, path: string, goneIsEmpty = false): { name: string; type: number }[] {
  const out: { name: string; type: number }[] = [];
  const buf = direntBuffer();
  const at = direntAt;
  for (;;) {
    let r = sys("getdents64", fd, at, buf.length);
    while (r === -EINTR) r = sys("getdents64", fd, at, buf.length);
    if (r === -ENOENT && goneIsEmpty) return out;
    const n = check(r, "scandir", path);
    if (n === 0) return out;
    for (let off = 0; off < n; ) {
      const reclen = (buf[off + 16] as number) | ((buf[off + 17] as number) << 8);
      const type = buf[off + 18] as number;
      const end = buf.indexOf(0, off + 19);
      const name = utf8(buf.subarray(off + 19, end));
      if (name !== "." && name !== "..") out.push({ name, type });
      off += reclen;
    }
  }
}

/** A directory entry as node's readdirSync({ withFileTypes: true }) gives it. */
export class Dirent {
  constructor(
    readonly name: string,
    readonly parentPath: string,
    private readonly type: number,
  ) {}
  isDirectory(): boolean {
    return this.type === DT_DIR;
  }
  isFile(): boolean {
    return this.type === DT_REG;
  }
  isSymbolicLink(): boolean {
    return this.type === DT_LNK;
  }
}

/** The names in a directory, in the directory's own order (as node's, unsorted); with withFileTypes, Dirents. */
export function readdirSync(path: string): string[];
export function readdirSync(path: string, options: { withFileTypes: true }): Dirent[];
export function readdirSync(path: string, options?: { withFileTypes: true }): string[] | Dirent[] {
  const fd = check(sys("openat", AT_FDCWD, pa(path, "scandir"), O.RDONLY | O.DIRECTORY | O.CLOEXEC), "scandir", path);
  try {
    const list = entries(fd, path);
    if (!options?.withFileTypes) {
      const names: string[] = [];
      for (const e of list) names.push(e.name);
      return names;
    }
    const out: Dirent[] = [];
    for (const e of list) {
      let type = e.type;
      // a filesystem that does not fill d_type: the type from lstat, as node does
      if (type === 0) {
        const st = statx(fd, e.name, AT_SYMLINK_NOFOLLOW);
        type = typeof st === "number" ? 0 : st.isDirectory() ? DT_DIR : st.isFile() ? DT_REG : st.isSymbolicLink() ? DT_LNK : 0;
      }
      out.push(new Dirent(e.name, path, type));
    }
    return out;
  } finally {
    sys("close", fd);
  }
}

/** Removes what is in the directory open at fd, depth first, without following a symbolic link. */
function emptyDir(fd: number, path: string, force: boolean): void {
  // removed meanwhile by another process (a concurrent rm): nothing left to empty
  for (const e of entries(fd, path, true)) {
    const full = `${path}/${e.name}`;
    let dir = e.type === DT_DIR;
    if (e.type === 0) {
      const st = statx(fd, e.name, AT_SYMLINK_NOFOLLOW);
      dir = typeof st !== "number" && st.isDirectory();
    }
    if (!dir) {
      const r = sys("unlinkat", fd, pa(e.name, "unlink"), 0);
      if (r < 0 && !(force && r === -ENOENT)) throw errnoError(-r, "unlink", full);
      continue;
    }
    const sub = sys("openat", fd, pa(e.name, "open"), O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC);
    if (sub < 0) {
      if (force && sub === -ENOENT) continue;
      throw errnoError(-sub, "open", full);
    }
    try {
      emptyDir(sub, full, force);
    } finally {
      sys("close", sub);
    }
    // (the path buffer was used for the entries below: encoded again)
    const r = sys("unlinkat", fd, pa(e.name, "rmdir"), AT_REMOVEDIR);
    if (r < 0 && !(force && r === -ENOENT)) throw errnoError(-r, "rmdir", full);
  }
}

/**
 * rm: a file or symbolic link is unlinked; a directory needs recursive, and then
 * goes with everything in it (symbolic links inside are removed, never
 * followed). force: a path that does not exist is no error.
 */
export function rmSync(path: string, options?: { recursive?: boolean; force?: boolean }): void {
  const force = !!options?.force;
  const st = statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW);
  if (typeof st === "number") {
    if (force && st === -ENOENT) return;
    throw errnoError(-st, "lstat", path);
  }
  if (!st.isDirectory()) {
    const r = sys("unlinkat", AT_FDCWD, pa(path, "unlink"), 0);
    if (r < 0 && !(force && r === -ENOENT)) throw errnoError(-r, "unlink", path);
    return;
  }
  if (!options?.recursive) {
    throw Object.assign(new Error(`Path is a directory: rm returned EISDIR (is a directory) ${path}`), { code: "ERR_FS_EISDIR", path, syscall: "rm" });
  }
  const fd = sys("openat", AT_FDCWD, pa(path, "open"), O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC);
  if (fd < 0) {
    if (force && fd === -ENOENT) return;
    throw errnoError(-fd, "open", path);
  }
  try {
    emptyDir(fd, path.endsWith("/") ? path.slice(0, -1) : path, force);
  } finally {
    sys("close", fd);
  }
  const r = sys("unlinkat", AT_FDCWD, pa(path, "rmdir"), AT_REMOVEDIR);
  if (r < 0 && !(force && r === -ENOENT)) throw errnoError(-r, "rmdir", path);
}
