/**
 * The native helper: csrc/ compiled at run time by bun:ffi's cc (TinyCC).
 *
 * The C source is embedded in the binary as text. cc cannot read the binary's
 * embedded files (/$bunfs), so the source goes through a memfd and cc reads it at
 * /proc/self/fd/N. The program is built -nostdlib with no #include: a server has no
 * headers and no libc6-dev (see csrc/lib.c). Compiling costs a few milliseconds, so
 * it happens once per process and only for commands that need it.
 */
import { cc, FFIType, ptr } from "bun:ffi";
import { closeSync } from "node:fs";
import archAarch64 from "../../csrc/arch_aarch64.c" with { type: "text" };
import archX8664 from "../../csrc/arch_x86_64.c" with { type: "text" };
import childIdentityC from "../../csrc/child_identity.c" with { type: "text" };
import childInterpC from "../../csrc/child_interp.c" with { type: "text" };
import childMountsC from "../../csrc/child_mounts.c" with { type: "text" };
import childSecurityC from "../../csrc/child_security.c" with { type: "text" };
import helperC from "../../csrc/helper.c" with { type: "text" };
import hostCallsC from "../../csrc/host_calls.c" with { type: "text" };
import libC from "../../csrc/lib.c" with { type: "text" };
import { fail } from "../errors.ts";
import { mark } from "../trace.ts";
import { memfdWith } from "./libc.ts";

const { i32 } = FFIType;

/** The functions behind nsb_call(fn, args) in csrc/host_calls.c (one FFI symbol: each costs ~0.5 ms to bind). */
export const F = {
  SPAWN: 1,
  RECV: 2,
  SEND: 3,
  READ_FULL: 4,
  WAIT: 5,
  WINSIZE: 6,
  SUBREAPER: 7,
  SEAL: 8,
  PIPE: 9,
  CLOSE: 10,
  KILL: 11,
  IDMAP_TREE: 12,
  PIDFD_OPEN: 13,
  PIDFD_SIGNAL: 14,
  MOUNT: 15,
  UMOUNT: 16,
  NETLINK: 17,
  TERMIOS: 18,
  BPF: 19,
  USERNS_HOLDER: 20,
} as const;

const symbols = { nsb_call: { args: [i32, FFIType.ptr], returns: i32 } } as const;

type Arg = number | NodeJS.TypedArray;
const argv = new BigInt64Array(6);

/** The helper's files, in the order they are concatenated into one unit (csrc/HELPER_FILES in the Makefile too). */
const HELPER = [helperC, childMountsC, childIdentityC, childSecurityC, childInterpC, hostCallsC];

/** The C source for this machine's architecture: arch file + lib + the helper's files. */
export function helperSource(): string {
  const arch = process.arch === "x64" ? archX8664 : process.arch === "arm64" ? archAarch64 : undefined;
  if (!arch) fail(`nsbox does not support the ${process.arch} architecture yet (x64 and arm64 are supported)`);
  return [arch, libC, ...HELPER, ""].join("\n");
}

function compile() {
  const fd = memfdWith("nsbox-helper.c", new TextEncoder().encode(helperSource()));
  try {
    return cc({ source: `/proc/self/fd/${fd}`, flags: ["-nostdlib"], symbols });
  } finally {
    closeSync(fd);
  }
}

let loaded: ReturnType<typeof compile>["symbols"] | undefined;

/** Compiles the helper now (it is otherwise compiled on first use). */
export function compileHelper(): NonNullable<typeof loaded> {
  if (!loaded) {
    mark("compile helper");
    loaded = compile().symbols;
    mark("helper compiled");
  }
  return loaded;
}

/**
 * Calls helper function fn (compiling the helper on first use). Numbers are passed
 * as integers, typed arrays as pointers to their memory (kept alive by the caller).
 */
export function call(fn: number, ...args: Arg[]): number {
  const h = compileHelper();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as Arg;
    argv[i] = BigInt(typeof a === "number" ? a : ptr(a));
  }
  return h.nsb_call(fn, argv);
}

/** The address of a typed array's memory, for structures that hold pointers (bpf_attr); keep the array alive meanwhile. */
export function addressOf(a: NodeJS.TypedArray): bigint {
  return BigInt(ptr(a));
}
