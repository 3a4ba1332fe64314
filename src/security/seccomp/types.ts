/**
 * The shapes a seccomp profile comes in, and the one error type.
 *
 * Two input shapes: docker's profile JSON (moby/profiles/seccomp: archMap, includes/excludes
 * by caps, arches and kernel version, the legacy `name`) and the OCI runtime-spec
 * `linux.seccomp` (config.json). docker resolves the first into the second for the
 * container at hand; the compiler only ever sees the second.
 */
import { SecurityError } from "../errors.ts";

/** A bad profile: one line naming the bad input and the fix; exit 125 like every nsbox error. */
export class SeccompError extends SecurityError {
  override name = "SeccompError";
}

/** The architectures nsbox runs on; each carries its 32-bit compat ABI (and x86_64 its x32 ABI). */
export type NativeArch = "x86_64" | "aarch64";

export const ACTIONS = [
  "SCMP_ACT_ALLOW",
  "SCMP_ACT_ERRNO",
  "SCMP_ACT_KILL",
  "SCMP_ACT_KILL_THREAD",
  "SCMP_ACT_KILL_PROCESS",
  "SCMP_ACT_TRAP",
  "SCMP_ACT_LOG",
  "SCMP_ACT_TRACE",
] as const;
/** SCMP_ACT_NOTIFY is part of the spec but refused: it needs a listener (a seccomp agent) nsbox does not run. */
export type SeccompAction = (typeof ACTIONS)[number] | "SCMP_ACT_NOTIFY";

export const OPERATORS = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"] as const;
export type SeccompOperator = (typeof OPERATORS)[number];

/**
 * One argument comparison (OCI LinuxSeccompArg). Values are uint64: JSON numbers above
 * 2^53 arrive as bigint from parseProfile so no bit is lost. For MASKED_EQ `value` is
 * the mask and `valueTwo` the expected masked value (libseccomp's SCMP_CMP_MASKED_EQ).
 */
export interface LinuxSeccompArg {
  index: number;
  value: number | bigint;
  valueTwo?: number | bigint;
  op: SeccompOperator;
}

/** OCI LinuxSyscall: the rule applies to every name; all args must hold (AND). */
export interface LinuxSyscall {
  names: string[];
  action: SeccompAction;
  /** ERRNO: the errno returned (default EPERM); TRACE: the message the tracer gets (default EPERM, as runc). */
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

/** OCI runtime-spec `linux.seccomp`: what config.json carries and what the compiler takes. */
export interface LinuxSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  /** SCMP_ARCH_* names; the native arch is always filtered too (libseccomp always keeps it). */
  architectures?: string[];
  /** Passed through for the loader (SECCOMP_FILTER_FLAG_*); the BPF program does not depend on them. */
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: LinuxSyscall[];
}

/** docker's conditions on a rule: capabilities (CAP_ form), moby arch names (amd64, arm64, x86, arm, ...), "X.Y". */
export interface ProfileFilter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

/** docker's rule: OCI's plus the legacy single `name`, a comment and the conditions. */
export interface ProfileSyscall {
  names?: string[];
  name?: string;
  action: string;
  errnoRet?: number;
  args?: LinuxSeccompArg[] | null;
  comment?: string;
  includes?: ProfileFilter;
  excludes?: ProfileFilter;
}

/** docker's profile (moby/profiles/seccomp.Seccomp): OCI's fields plus archMap. */
export interface DockerProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures: string[] | null }[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: ProfileSyscall[] | null;
}

/** What parseProfile and defaultSeccomp return: the OCI shape plus the names no filtered arch knows. */
export interface Resolved extends LinuxSeccomp {
  /** Syscall names that exist on none of the filtered architectures (docker ignores them; --debug counts them). */
  unknown: string[];
}

export interface ResolveOptions {
  /** The container's bounding set, "CAP_SYS_ADMIN" form ("SYS_ADMIN" is accepted too). */
  caps: string[];
  arch: NativeArch;
  /** The kernel release minKernel is compared with ("6.1.0-13-amd64"); default: the running kernel, as docker. */
  kernel?: string;
}

/** The BPF program for seccomp(SECCOMP_SET_MODE_FILTER): struct sock_filter[], 8 bytes each, little-endian. */
export interface Compiled {
  filter: Uint8Array;
  instructions: number;
  /** Syscall names that exist on none of the filtered architectures: skipped. */
  unknown: string[];
}
