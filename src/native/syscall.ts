/**
 * Raw system calls from JavaScript, through the helper's sys() (a Node-API
 * addon, loaded at the first call: src/native/addon.ts).
 *
 * Why not node:fs: loading Bun's node:fs costs 2.2-4.5 ms (measured in-process)
 * and ~1.9 MiB of peak RSS, at every start; the helper is loaded anyway, and its
 * one function serves every call below. src/native/fs.ts builds the file
 * operations nsbox needs on it.
 *
 * Only the calls that exist on both architectures nsbox ships (x86_64, aarch64):
 * the *at forms, statx and getdents64. The helper's call() (src/native/helper.ts)
 * keeps what needs C: a clone, a signal handler, a structure built around the call.
 */
import { loadAddon, type Native } from "./addon.ts";

const X86_64 = {
  read: 0,
  write: 1,
  close: 3,
  pread64: 17,
  uname: 63,
  statfs: 137,
  getdents64: 217,
  openat: 257,
  mkdirat: 258,
  fchownat: 260,
  unlinkat: 263,
  symlinkat: 266,
  readlinkat: 267,
  fchmodat: 268,
  faccessat: 269,
  renameat2: 316,
  memfd_create: 319,
  statx: 332,
  prctl: 157,
  mount: 165,
  umount2: 166,
  mknodat: 259,
  eventfd2: 290,
  pipe2: 293,
  prlimit64: 302,
  bpf: 321,
  pidfd_send_signal: 424,
  pidfd_open: 434,
  ppoll: 271,
  dup: 32,
  fcntl: 72,
  fsync: 74,
} as const;

export type SyscallName = keyof typeof X86_64;

const AARCH64: Record<SyscallName, number> = {
  read: 63,
  write: 64,
  close: 57,
  pread64: 67,
  uname: 160,
  statfs: 43,
  getdents64: 61,
  openat: 56,
  mkdirat: 34,
  fchownat: 54,
  unlinkat: 35,
  symlinkat: 36,
  readlinkat: 78,
  fchmodat: 53,
  faccessat: 48,
  renameat2: 276,
  memfd_create: 279,
  statx: 291,
  prctl: 167,
  mount: 40,
  umount2: 39,
  mknodat: 33,
  eventfd2: 19,
  pipe2: 59,
  prlimit64: 261,
  bpf: 280,
  pidfd_send_signal: 424,
  pidfd_open: 434,
  ppoll: 73,
  dup: 23,
  fcntl: 25,
  fsync: 82,
};

const NR: Record<SyscallName, number> = process.arch === "arm64" ? AARCH64 : X86_64;

/** The open flags that differ between the two architectures, and those that do not. */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DIRECTORY: process.arch === "arm64" ? 0o40000 : 0o200000,
  NOFOLLOW: process.arch === "arm64" ? 0o100000 : 0o400000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;

let loaded: Native | undefined;

/** The helper's functions, loaded at the first use (commands that make no system call, --version, --help, do without). */
export function native(): Native {
  loaded ??= loadAddon(NR);
  return loaded;
}

/**
 * Calls syscall `name` with integer arguments (pointers as numbers, see addr).
 * Returns its result, or -errno when it failed (the kernel's convention).
 * (Seven plain arguments, no rest or spread: a start runs this in the
 * interpreter, where each costs.)
 */
export function sys(name: SyscallName, a = 0, b = 0, c = 0, d = 0, e = 0, f = 0): number {
  return (loaded ?? native()).sys(NR[name], a, b, c, d, e, f);
}

/** The address of a typed array's memory (keep the array alive during the call). An empty one has none: 0. */
export function addr(a: NodeJS.TypedArray): number {
  return a.byteLength === 0 ? 0 : (loaded ?? native()).addr(a);
}

/**
 * Two buffers for path arguments, encoded in place (no allocation per call) at
 * addresses taken once: JavaScriptCore never moves a typed array's memory.
 * PATH_MAX (4096) with its NUL.
 */
const PATH_MAX = 4096;
// made at the first path: a start allocates nothing at its modules' top level
let paths: [Uint8Array, Uint8Array] | undefined;
const pathAt = [0, 0];
let encoder: TextEncoder | undefined;

let decoder: TextDecoder | undefined;

/** The one TextEncoder of the native layer (src/native/fs.ts encodes with it too). */
export function utf8Encoder(): TextEncoder {
  encoder ??= new TextEncoder();
  return encoder;
}

/** Bytes the kernel gave (a file, a link, a name) as text, through the layer's one TextDecoder. */
export function utf8Decode(bytes: Uint8Array): string {
  decoder ??= new TextDecoder();
  return decoder.decode(bytes);
}

/**
 * The address of path as a C string in path buffer `slot` (0 or 1), valid until
 * the next call for that slot; -ENAMETOOLONG when it does not fit.
 */
export function cpath(path: string, slot: 0 | 1 = 0): number {
  paths ??= [new Uint8Array(PATH_MAX + 4), new Uint8Array(PATH_MAX + 4)];
  const buf = paths[slot];
  const { read: used, written } = utf8Encoder().encodeInto(path, buf);
  if (used < path.length || written > PATH_MAX - 1) return -36; // ENAMETOOLONG
  buf[written] = 0;
  if (pathAt[slot] === 0) pathAt[slot] = addr(buf);
  return pathAt[slot] as number;
}

/**
 * A NUL-terminated copy of a string, for a name that must outlive the next cpath.
 * (A Uint8Array, not a Buffer: Buffer.from's first call in a process costs a start
 * ~0.4 ms, see src/list.ts.)
 */
export function cstr(s: string): Uint8Array {
  return utf8Encoder().encode(`${s}\0`);
}
