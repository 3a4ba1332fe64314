/**
 * Profile actions -> the 32-bit value a seccomp filter returns (include/uapi/linux/seccomp.h).
 * Values as libseccomp defines SCMP_ACT_* and runc maps them.
 */
import type { SeccompAction } from "./types.ts";

export const RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

export const EPERM = 1;

/**
 * What a syscall from an ABI the filter does not judge gets. runc and crun leave
 * libseccomp's default bad-arch action alone, SCMP_ACT_KILL = kill the thread (libseccomp
 * db.c: act_badarch = SCMP_ACT_KILL), so a container sees the same under nsbox. Returning
 * an errno instead would let a process probe for a foreign ABI and keep going; killing is
 * the conservative answer to "an ABI this profile was not written for".
 */
export const BAD_ARCH_RET = RET.KILL_THREAD;

/** The filter's return value for an action; errnoRet defaults to EPERM for ERRNO and TRACE, as runc does. */
export function actionRet(action: SeccompAction, errnoRet?: number): number {
  const data = (errnoRet ?? EPERM) & 0xffff;
  switch (action) {
    case "SCMP_ACT_ALLOW":
      return RET.ALLOW;
    case "SCMP_ACT_ERRNO":
      return (RET.ERRNO | data) >>> 0;
    case "SCMP_ACT_TRACE":
      return (RET.TRACE | data) >>> 0;
    case "SCMP_ACT_KILL":
    case "SCMP_ACT_KILL_THREAD":
      // SCMP_ACT_KILL has always meant the thread (SECCOMP_RET_KILL, now KILL_THREAD).
      return RET.KILL_THREAD;
    case "SCMP_ACT_KILL_PROCESS":
      return RET.KILL_PROCESS;
    case "SCMP_ACT_TRAP":
      return RET.TRAP;
    case "SCMP_ACT_LOG":
      return RET.LOG;
    case "SCMP_ACT_NOTIFY":
      // validate.ts refuses NOTIFY before compiling; reaching here is a bug.
      throw new Error("seccomp: SCMP_ACT_NOTIFY cannot be compiled");
  }
}
