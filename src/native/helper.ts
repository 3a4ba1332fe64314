/**
 * The native helper: csrc/ built by `make` with gcc into a tiny shared object
 * (-nostdlib, no #include, raw syscalls; one exported symbol, nsb_call) and
 * embedded in the binary, as the shim is (src/native/embedded.ts).
 *
 * dlopen needs a file, so the object goes through a memfd, opened at
 * /proc/self/fd/N and sealed once mapped. Loading costs
 * ~0.4 ms (compiling the same source with bun:ffi's TinyCC at run time cost ~6):
 * it happens once per process and only for commands that need it.
 */
import * as bunFfi from "bun:ffi";
import { mark } from "../trace.ts";
import { helperBytes } from "./embedded.ts";
import { closeSync } from "./fs.ts";
import { MFD_ALLOW_SEALING, MFD_CLOEXEC, memfdWith, seal } from "./libc.ts";
import { useFfi } from "./syscall.ts";

const { dlopen, FFIType, ptr } = bunFfi;
useFfi(bunFfi);

const { i32 } = FFIType;

/**
 * The functions behind nsb_call(fn, args) in csrc/host_calls.c: one exported
 * symbol, one FFI binding (a dlopen of three symbols measures ~0.06 ms). Plain
 * system calls go through src/native/syscall.ts instead; the numbers of those
 * that moved there are not reused.
 */
export const F = {
  SPAWN: 1,
  RECV: 2,
  SEND: 3,
  READ_FULL: 4,
  WAIT: 5,
  WINSIZE: 6,
  IDMAP_TREE: 12,
  NETLINK: 17,
  TERMIOS: 18,
  USERNS_HOLDER: 20,
  FWD_INSTALL: 21,
  FWD_HANDOFF: 22,
  FWD_TARGET: 23,
  FLOCK: 24,
  SIGMASK: 26,
  EXECVEAT: 27,
  CONNECT_UNIX: 30,
  AWAY_START: 32,
  AWAY_DONE: 33,
} as const;

const symbols = { nsb_call: { args: [i32, FFIType.ptr], returns: i32 } } as const;

type Arg = number | NodeJS.TypedArray;
const argv = new BigInt64Array(6);

function load() {
  const fd = memfdWith("nsbox-helper", helperBytes(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  try {
    const lib = dlopen(`/proc/self/fd/${fd}`, symbols);
    // Mapped private: sealed, the file can no longer change under the mapping.
    seal(fd);
    return lib;
  } finally {
    closeSync(fd);
  }
}

let loaded: ReturnType<typeof load>["symbols"] | undefined;

/** Loads the helper now (it is otherwise loaded on first use). */
export function loadHelper(): NonNullable<typeof loaded> {
  if (!loaded) {
    loaded = load().symbols;
    mark("helper loaded");
  }
  return loaded;
}

/**
 * Calls helper function fn (loading the helper on first use). Numbers are passed
 * as integers, typed arrays as pointers to their memory (kept alive by the caller).
 */
export function call(fn: number, ...args: Arg[]): number {
  const h = loadHelper();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as Arg;
    argv[i] = BigInt(typeof a === "number" ? a : ptr(a));
  }
  return h.nsb_call(fn, argv);
}
