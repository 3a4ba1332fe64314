/**
 * Checks shared by both input shapes (docker profile, OCI linux.seccomp), each failing
 * with one line that names the field and what to write instead.
 */
import { KNOWN_ARCHES } from "./arches.ts";
import { ACTIONS, type LinuxSeccompArg, OPERATORS, type SeccompAction, SeccompError, type SeccompOperator } from "./types.ts";

const U64_MAX = (1n << 64n) - 1n;

export function checkAction(action: unknown, where: string): SeccompAction {
  if (action === "SCMP_ACT_NOTIFY") {
    throw new SeccompError(
      `${where}: SCMP_ACT_NOTIFY needs a seccomp agent listening on a socket, which nsbox does not run; use SCMP_ACT_ERRNO or SCMP_ACT_LOG`,
    );
  }
  if (typeof action !== "string" || !(ACTIONS as readonly string[]).includes(action)) {
    const shown = action === undefined ? "is missing" : `${JSON.stringify(action)} is not supported`;
    throw new SeccompError(`${where} ${shown}: use one of ${ACTIONS.join(", ")}`);
  }
  return action as SeccompAction;
}

/** errnoRet / defaultErrnoRet: the kernel keeps 16 bits of SECCOMP_RET_DATA. */
export function checkErrno(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffff) {
    throw new SeccompError(`${where} ${JSON.stringify(String(value))} is not an errno: use an integer from 0 to 65535 (1 = EPERM, 38 = ENOSYS)`);
  }
  return value;
}

export function checkArchitecture(name: unknown, where: string): string {
  if (typeof name !== "string" || !(KNOWN_ARCHES as readonly string[]).includes(name)) {
    throw new SeccompError(
      `${where}: unknown architecture ${JSON.stringify(name)}: use SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32, SCMP_ARCH_AARCH64, SCMP_ARCH_ARM or another SCMP_ARCH_* name`,
    );
  }
  return name;
}

export function checkNames(names: unknown, where: string): string[] {
  if (!Array.isArray(names) || names.length === 0 || names.some((n) => typeof n !== "string" || n === "")) {
    throw new SeccompError(`${where} has no syscall names: give "names": ["read", ...]`);
  }
  return names as string[];
}

export function checkArgs(args: unknown, where: string): LinuxSeccompArg[] | undefined {
  if (args === undefined || args === null) return undefined;
  if (!Array.isArray(args)) throw new SeccompError(`${where}.args must be a list of {index, value, valueTwo, op}`);
  return args.map((a: Record<string, unknown>, i) => {
    const at = `${where}.args[${i}]`;
    if (typeof a !== "object" || a === null) throw new SeccompError(`${at} must be an object {index, value, valueTwo, op}`);
    if (typeof a.index !== "number" || !Number.isInteger(a.index) || a.index < 0 || a.index > 5) {
      throw new SeccompError(`${at}.index ${JSON.stringify(String(a.index))} is not a syscall argument: use 0 to 5 (a syscall has at most 6 arguments)`);
    }
    if (typeof a.op !== "string" || !(OPERATORS as readonly string[]).includes(a.op)) {
      throw new SeccompError(`${at}.op ${JSON.stringify(a.op ?? null)} is not supported: use one of ${OPERATORS.join(", ")}`);
    }
    const arg: LinuxSeccompArg = { index: a.index, value: u64(a.value ?? 0, `${at}.value`), op: a.op as SeccompOperator };
    if (a.valueTwo !== undefined && a.valueTwo !== null) arg.valueTwo = u64(a.valueTwo, `${at}.valueTwo`);
    return arg;
  });
}

/** Arguments are uint64 in the spec; keep a number when it is exact, a bigint above 2^53. */
function u64(v: unknown, where: string): number | bigint {
  const ok = (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) || (typeof v === "bigint" && v >= 0n && v <= U64_MAX);
  if (!ok) throw new SeccompError(`${where} ${JSON.stringify(String(v))} is not a uint64: use an integer from 0 to 18446744073709551615`);
  return v as number | bigint;
}

/** The value as the 64-bit unsigned integer the kernel compares with. */
export function toU64(v: number | bigint | undefined): bigint {
  return BigInt(v ?? 0) & U64_MAX;
}
