/**
 * Loads the native helper (csrc/, built by make with gcc, embedded in nsbox by
 * src/native/embedded.ts) as a Node-API addon: process.dlopen, then its three
 * functions (csrc/napi.c) are nsbox's way into the kernel.
 *
 * process.dlopen needs a file. In order:
 *  1. <data root>/lib/helper-<sha256>.node, the helper's own copy, written by the
 *     first start that had to go to step 2. Loading it costs a start
 *     process.dlopen alone (~0.6 ms).
 *  2. a memfd (sealed once loaded), made with libc's syscall(2) bound through
 *     bun:ffi, which compiles a trampoline with TinyCC: ~2 ms and ~1.5 MiB of
 *     peak RSS more than step 1 (bench/trace-notes.md, "eighth stop"). The copy
 *     of step 1 is then written, so that the next start does without bun:ffi,
 *     and the copies of other builds of nsbox are removed.
 *
 * The copy is as trusted as the data root that holds it, where the images and
 * containers nsbox runs are too (root's is writable by root alone, a rootless
 * user's is 0700; the copy's directory is 0700 and the copy 0500). Its name
 * carries its content's hash, so that another build of nsbox never loads it. Which data
 * root: NSBOX_ROOT, else /var/lib/nsbox for root and the rootless user's
 * $XDG_DATA_HOME/nsbox (~/.local/share/nsbox) otherwise, as src/state/paths.ts
 * has them; not --root, since the helper is loaded before the command line is
 * parsed (a --root elsewhere shares the machine's copy). When no copy can be
 * written (no data root yet, a read-only one), or loaded (a noexec one: then it is
 * left as it is, not written again at each start), step 2 is all there is.
 */
import { join } from "../posixpath.ts";
import { helperBytes, helperSha256 } from "./embedded.ts";

type TypedArray = NodeJS.TypedArray;

/** The addon's exports (csrc/napi.c). */
export interface Native {
  /** a raw system call: its result, or -errno */
  sys(nr: number, a: number, b: number, c: number, d: number, e: number, f: number): number;
  /** nsb_call(fn, args) of csrc/host_calls.c */
  call(fn: number, args: BigInt64Array): number;
  /** the address of a typed array's memory */
  addr(a: TypedArray): number;
}

/** The system calls this module makes, by the caller's numbers (src/native/syscall.ts). */
export interface Numbers {
  read: number;
  write: number;
  faccessat: number;
  getdents64: number;
  statx: number;
  close: number;
  fcntl: number;
  fsync: number;
  openat: number;
  mkdirat: number;
  unlinkat: number;
  renameat2: number;
  memfd_create: number;
}

const AT_FDCWD = -100;

/**
 * The copy's upkeep below makes its system calls raw, through the addon's sys():
 * src/native/fs.ts is built on src/native/syscall.ts, which loads this module,
 * so it cannot be imported here.
 */
const cstr = (s: string): Uint8Array => new TextEncoder().encode(`${s}\0`);

function dlopenAddon(path: string): Native {
  const m = { exports: {} as Native };
  process.dlopen(m, path);
  if (typeof m.exports.sys !== "function") throw new Error(`${path} is not nsbox's helper`);
  return m.exports;
}

/** The data root's directory for the helper's copy, from the environment alone (see above). */
export function copyDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const abs = (p: string | undefined) => (p?.startsWith("/") ? p : undefined);
  const root = abs(env.NSBOX_ROOT);
  if (root) return join(root, "lib");
  if (process.getuid?.() === 0) return "/var/lib/nsbox/lib";
  const data = abs(env.XDG_DATA_HOME) ?? (abs(env.HOME) && join(env.HOME as string, ".local", "share"));
  return data ? join(data, "nsbox", "lib") : undefined;
}

export const copyName = `helper-${helperSha256.slice(0, 16)}.node`;

/** How the helper was loaded: from its copy, or through a memfd (NSBOX_TRACE shows it). */
export let loadedThrough: "copy" | "memfd" | undefined;

/** Loads the helper: its copy in the data root, else through a memfd (then writes the copy). */
export function loadAddon(nr: Numbers): Native {
  const dir = copyDir();
  if (dir) {
    try {
      const native = dlopenAddon(join(dir, copyName));
      loadedThrough = "copy";
      return native;
    } catch {
      // no copy yet (or an unusable one): made below
    }
  }
  const bytes = helperBytes();
  const native = throughMemfd(bytes, nr);
  loadedThrough = "memfd";
  if (dir) writeCopy(native, nr, dir, bytes);
  return native;
}

/** Step 2: the helper from a sealed memfd, written with libc's syscall(2) through bun:ffi. */
function throughMemfd(bytes: Uint8Array, nr: Numbers): Native {
  // (required here, not imported: a start that finds the copy never loads bun:ffi)
  const { dlopen, FFIType, ptr } = require("bun:ffi") as typeof import("bun:ffi");
  const { i64 } = FFIType;
  const libc = dlopen("libc.so.6", { syscall: { args: [i64, i64, i64, i64], returns: i64 } });
  const syscall = libc.symbols.syscall as unknown as (n: number, a: number, b: number, c: number) => number | bigint;
  const name = cstr("nsbox-helper");
  const MFD_CLOEXEC = 1;
  const MFD_ALLOW_SEALING = 2;
  const fd = Number(syscall(nr.memfd_create, ptr(name) as number, MFD_CLOEXEC | MFD_ALLOW_SEALING, 0));
  if (fd < 0) throw new Error("cannot load nsbox's helper: memfd_create failed (Linux 3.17 or later is needed)");
  let native: Native;
  try {
    let off = 0;
    while (off < bytes.length) {
      const n = Number(syscall(nr.write, fd, (ptr(bytes) as number) + off, bytes.length - off));
      if (n <= 0) throw new Error("cannot load nsbox's helper: writing its memfd failed");
      off += n;
    }
    native = dlopenAddon(`/proc/self/fd/${fd}`);
    // mapped private: sealed, the file can no longer change under the mapping
    const F_ADD_SEALS = 1033;
    native.sys(nr.fcntl, fd, F_ADD_SEALS, 1 | 2 | 4 | 8, 0, 0, 0);
  } finally {
    syscall(nr.close, fd, 0, 0);
    libc.close();
  }
  return native;
}

/**
 * The copy of step 1: written to a temporary name (mode 0500, fsynced) and
 * renamed into place, so that no start ever loads half a file. Only a speed-up:
 * any failure leaves no file and changes nothing else.
 */
function writeCopy(native: Native, nr: Numbers, dir: string, bytes: Uint8Array): void {
  const { sys, addr } = native;
  const dirC = cstr(dir);
  const final = cstr(join(dir, copyName));
  // the copy is there and whole, yet it did not load: the mount does not let it
  // (noexec); rewriting it (and its fsync) at every start would change nothing
  if (sameBytes(native, nr, final, bytes)) return;
  // the data root itself must exist already: it is made, with its mode, by nsbox's commands
  const made = sys(nr.mkdirat, AT_FDCWD, addr(dirC), 0o700, 0, 0, 0);
  if (made < 0 && made !== -17 /* EEXIST */) return;
  const tmp = cstr(join(dir, `.${copyName}.${process.pid}`));
  const O_WRONLY_CREAT_EXCL_CLOEXEC = 0o1 | 0o100 | 0o200 | 0o2000000;
  const fd = sys(nr.openat, AT_FDCWD, addr(tmp), O_WRONLY_CREAT_EXCL_CLOEXEC, 0o500, 0, 0);
  if (fd < 0) return;
  let ok = true;
  for (let off = 0; ok && off < bytes.length; ) {
    const n = sys(nr.write, fd, addr(bytes) + off, bytes.length - off, 0, 0, 0);
    if (n <= 0) ok = false;
    else off += n;
  }
  ok = ok && sys(nr.fsync, fd, 0, 0, 0, 0, 0) === 0;
  sys(nr.close, fd, 0, 0, 0, 0, 0);
  if (!ok || sys(nr.renameat2, AT_FDCWD, addr(tmp), AT_FDCWD, addr(final), 0, 0) < 0) sys(nr.unlinkat, AT_FDCWD, addr(tmp), 0, 0, 0, 0);
  else removeOtherCopies(native, nr, dir);
}

/** Whether the file at path (a C string) holds exactly bytes. */
function sameBytes({ sys, addr }: Native, nr: Numbers, path: Uint8Array, bytes: Uint8Array): boolean {
  const fd = sys(nr.openat, AT_FDCWD, addr(path), 0o2000000 /* O_RDONLY|O_CLOEXEC */, 0, 0, 0);
  if (fd < 0) return false;
  const got = new Uint8Array(bytes.length + 1);
  let used = 0;
  for (;;) {
    const n = sys(nr.read, fd, addr(got) + used, got.length - used, 0, 0, 0);
    if (n <= 0) break;
    used += n;
    if (used === got.length) break;
  }
  sys(nr.close, fd, 0, 0, 0, 0, 0);
  if (used !== bytes.length) return false;
  for (let i = 0; i < used; i++) if (got[i] !== bytes[i]) return false;
  return true;
}

/**
 * Once a copy is written: the copies of other builds written more than a day ago
 * (one per upgrade would pile up; a process that still maps one keeps its pages),
 * and the temporary files of writers that were killed before their rename (their
 * pid is gone). A day: two builds in use side by side (an upgrade under way) each
 * keep theirs, instead of each start of one removing the other's.
 */
function removeOtherCopies({ sys, addr }: Native, nr: Numbers, dir: string): void {
  const O_DIRECTORY = process.arch === "arm64" ? 0o40000 : 0o200000;
  const fd = sys(nr.openat, AT_FDCWD, addr(cstr(dir)), O_DIRECTORY | 0o2000000, 0, 0, 0);
  if (fd < 0) return;
  const names: string[] = [];
  const buf = new Uint8Array(8192);
  const text = new TextDecoder();
  for (;;) {
    const n = sys(nr.getdents64, fd, addr(buf), buf.length, 0, 0, 0);
    if (n <= 0) break;
    // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name (NUL-terminated)
    for (let off = 0; off < n; ) {
      const reclen = (buf[off + 16] as number) | ((buf[off + 17] as number) << 8);
      let end = off + 19;
      while (end < off + reclen && buf[end] !== 0) end++;
      names.push(text.decode(buf.subarray(off + 19, end)));
      off += reclen;
    }
  }
  sys(nr.close, fd, 0, 0, 0, 0, 0);
  const stx = new Uint8Array(256);
  const STATX_MTIME = 0x40;
  const AT_SYMLINK_NOFOLLOW = 0x100;
  const dayAgo = Date.now() / 1000 - 86400;
  const writtenBefore = (path: string, seconds: number) =>
    sys(nr.statx, AT_FDCWD, addr(cstr(path)), AT_SYMLINK_NOFOLLOW, STATX_MTIME, addr(stx), 0) === 0 &&
    new DataView(stx.buffer).getBigInt64(0x70, true) < BigInt(Math.floor(seconds)); // stx_mtime.tv_sec
  for (const name of names) {
    const other = name.startsWith("helper-") && name.endsWith(".node") && name !== copyName && writtenBefore(join(dir, name), dayAgo);
    const dot = name.lastIndexOf(".");
    const writer = name.startsWith(".helper-") ? name.slice(dot + 1) : "";
    const dead = writer !== "" && writer !== String(process.pid) && sys(nr.faccessat, AT_FDCWD, addr(cstr(`/proc/${writer}`)), 0, 0, 0, 0) < 0;
    if (other || dead) sys(nr.unlinkat, AT_FDCWD, addr(cstr(join(dir, name))), 0, 0, 0, 0);
  }
}
