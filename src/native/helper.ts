/**
 * The native helper: csrc/ built by `make` with gcc into a tiny shared object
 * (-nostdlib, no #include, raw syscalls), embedded in the binary as the shim
 * is (src/native/embedded.ts), and loaded as a Node-API addon
 * (src/native/addon.ts, csrc/napi.c): once per process, only for commands
 * that need it. Its call() reaches the functions below; its sys() is
 * src/native/syscall.ts.
 */
import { mark } from "../trace.ts";
import { loadedThrough } from "./addon.ts";
import { native } from "./syscall.ts";

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
  EXIT_KEEPER: 34,
} as const;

type Arg = number | NodeJS.TypedArray;
const argv = new BigInt64Array(6);

let loaded: ReturnType<typeof native> | undefined;

/** Loads the helper now (it is otherwise loaded on first use). */
export function loadHelper(): NonNullable<typeof loaded> {
  if (!loaded) {
    loaded = native();
    mark(loadedThrough === "memfd" ? "helper loaded (through a memfd: no copy in the data root yet)" : "helper loaded");
  }
  return loaded;
}

/**
 * Calls helper function fn (loading the helper on first use). Numbers are passed
 * as integers, typed arrays as pointers to their memory (kept alive by the caller).
 */
export function call(fn: number, ...args: Arg[]): number {
  const h = loaded ?? loadHelper();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as Arg;
    argv[i] = BigInt(typeof a === "number" ? a : a.byteLength === 0 ? 0 : h.addr(a));
  }
  return h.call(fn, argv);
}
