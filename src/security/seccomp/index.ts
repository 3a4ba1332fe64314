/**
 * seccomp for nsbox: docker/OCI profiles in, a classic-BPF program out. Pure functions;
 * the C helper loads the bytes with seccomp(SECCOMP_SET_MODE_FILTER) as the child's last
 * step before execve.
 */
export { BAD_ARCH_RET, RET } from "./actions.ts";
export { AUDIT_ARCH } from "./arches.ts";
export { BPF_MAXINSNS } from "./bpf.ts";
export { compileSeccomp } from "./compile.ts";
export { MOBY_DEFAULT_PROFILE } from "./default-profile.ts";
export { defaultSeccomp, parseProfile, resolveProfile } from "./parse.ts";
export type {
  Compiled,
  DockerProfile,
  LinuxSeccomp,
  LinuxSeccompArg,
  LinuxSyscall,
  NativeArch,
  Resolved,
  ResolveOptions,
  SeccompAction,
  SeccompOperator,
} from "./types.ts";
export { SeccompError } from "./types.ts";
