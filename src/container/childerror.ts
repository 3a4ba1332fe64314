/**
 * A failure reported by the container process ({op, errno}) as one sentence a user
 * can act on, with nsbox's exit code (125) or the command's (126, 127).
 */

import { EXIT, NsboxError } from "../errors.ts";
import { readFileSync } from "../native/fs.ts";
import { strerror } from "../native/libc.ts";
import { C, type Op } from "../native/program.ts";

const ENOENT = 2;
const EPERM = 1;
const EACCES = 13;
const EINVAL = 22;
const ENOEXEC = 8;
const ENOSYS = 38;
const E2BIG = 7;

/** The kernel's limits on execve's strings (include/uapi/linux/binfmts.h, fs/exec.c). */
const MAX_ARG_STRLEN = 32 * 4096;
const ARG_MAX_FLOOR = 32 * 4096;
const STACK_LIMIT_CAP = ((8 * 1024 * 1024) / 4) * 3; // _STK_LIM / 4 * 3

/** The soft stack limit the container inherits from nsbox (execve allows a quarter of it). */
function stackLimit(): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max stack size"));
    const soft = line?.slice(26).trim().split(/\s+/)[0];
    return soft === undefined || soft === "unlimited" ? Number.POSITIVE_INFINITY : Number(soft);
  } catch {
    return 8 * 1024 * 1024;
  }
}

/**
 * E2BIG from execve as one sentence: which limit was hit, the kernel's (its
 * size in bytes) or nsbox's own. Exit 125: the command never started, and it
 * is not the command's fault that it could not (126 would say it is).
 */
function tooBig(args: readonly string[], env: readonly string[]): NsboxError {
  const strings = [...args, ...env];
  const longest = Math.max(0, ...strings.map((s) => Buffer.byteLength(s) + 1));
  // each string costs its bytes, its NUL and a pointer, as the kernel counts them
  const total = strings.reduce((n, s) => n + Buffer.byteLength(s) + 1 + 8, 0);
  const limit = Math.max(Math.min(stackLimit() / 4, STACK_LIMIT_CAP), ARG_MAX_FLOOR);
  const sizes = `${args.length} arguments and ${env.length} variables, ${total} bytes`;
  if (longest > MAX_ARG_STRLEN)
    return new NsboxError(`E2BIG: an argument or variable of ${longest} bytes exceeds the kernel's limit of ${MAX_ARG_STRLEN} bytes per string`);
  return new NsboxError(`E2BIG: the environment and arguments exceed the kernel's limit (${limit} bytes; got ${sizes})`);
}

/** `before`: the steps that ran before the failing one (a seccomp filter among them explains an EPERM). */
export function childError(op: Op | undefined, errno: number, command: string, before: Op[] = []): NsboxError {
  const text = strerror(errno).toLowerCase();
  if (!op) return new NsboxError(`container setup failed: ${text}`);
  const filtered = before.some((o) => o.code === C.SECCOMP);
  const profileHint =
    filtered && (errno === EPERM || errno === EACCES || errno === ENOSYS)
      ? " (the seccomp profile forbids a call nsbox needs here: allow it, or use --security-opt seccomp=unconfined)"
      : "";
  // execve's own EACCES (a file without x, a noexec mount) is no filter's: docker's profile answers EPERM
  if (op.code === C.EXEC && profileHint && errno !== EACCES) return new NsboxError(`exec ${JSON.stringify(command)}: ${text}${profileHint}`, EXIT.CANNOT_EXEC);
  if (op.code === C.EXEC) {
    if (errno === E2BIG) return tooBig(op.fields[3] as readonly string[], op.fields[4] as readonly string[]);
    if (errno === ENOENT)
      return new NsboxError(
        command.includes("/")
          ? `exec ${JSON.stringify(command)}: no such file in the container (or its #! interpreter is missing)`
          : `exec ${JSON.stringify(command)}: executable file not found in the container's PATH`,
        EXIT.NOT_FOUND,
      );
    if (errno === EACCES)
      return new NsboxError(`exec ${JSON.stringify(command)}: permission denied (not an executable file, or on a filesystem mounted noexec)`, EXIT.CANNOT_EXEC);
    if (errno === ENOEXEC)
      return new NsboxError(`exec ${JSON.stringify(command)}: exec format error (wrong architecture, or a script without #!)`, EXIT.CANNOT_EXEC);
    return new NsboxError(`exec ${JSON.stringify(command)}: ${text}`, EXIT.CANNOT_EXEC);
  }
  let hint = profileHint;
  if (hint) {
    // said above
  } else if (op.code === C.SECCOMP && errno === EINVAL) hint = " (the kernel refused the filter nsbox built: please report this with the profile)";
  else if (op.code === C.MOUNT && op.what === "make mount propagation private" && errno === EINVAL)
    hint = " (the root of nsbox's mount namespace is not a mount point, as in a plain chroot: bind-mount that directory onto itself first)";
  else if (op.code === C.PIVOT && errno === EINVAL)
    hint = " (pivot_root refuses a root on ramfs/initramfs or a shared mount: run nsbox from a system whose / is a real filesystem)";
  else if (op.code === C.MOUNT && op.what.includes("overlay") && (errno === EINVAL || errno === ENOENT))
    hint = " (overlayfs must be available, and the rootfs and nsbox's --root must be on filesystems it supports, e.g. ext4 or xfs)";
  else if ((op.code === C.MOUNT || op.code === C.UNSHARE || op.code === C.SETNS) && errno === EPERM)
    hint = " (is nsbox running as root, and not inside a container that forbids it?)";
  else if (op.code === C.SETID && errno === EINVAL) hint = " (that id is not mapped in the container's user namespace)";
  else if (errno === ENOSYS) hint = " (the kernel is too old for nsbox: Linux 5.6 or later is needed)";
  return new NsboxError(`cannot ${op.what}: ${text}${hint}`);
}
