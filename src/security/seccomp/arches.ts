/**
 * Architectures: the SCMP_ARCH_* names a profile may use, and for the ones nsbox can
 * filter, what the kernel puts in seccomp_data.arch (AUDIT_ARCH_*, include/uapi/linux/audit.h),
 * which syscall table decides, and whether arguments are 64 bits wide.
 */
import { SYSCALLS_AARCH64 } from "./syscalls-aarch64.ts";
import { SYSCALLS_ARM } from "./syscalls-arm.ts";
import { SYSCALLS_I386 } from "./syscalls-i386.ts";
import { SYSCALLS_X32 } from "./syscalls-x32.ts";
import { SYSCALLS_X86_64 } from "./syscalls-x86_64.ts";
import type { NativeArch } from "./types.ts";

/** Every architecture libseccomp (and so the OCI spec) names: a profile listing a foreign one is valid, it just never matches here. */
export const KNOWN_ARCHES = [
  "SCMP_ARCH_X86",
  "SCMP_ARCH_X86_64",
  "SCMP_ARCH_X32",
  "SCMP_ARCH_ARM",
  "SCMP_ARCH_AARCH64",
  "SCMP_ARCH_LOONGARCH64",
  "SCMP_ARCH_M68K",
  "SCMP_ARCH_MIPS",
  "SCMP_ARCH_MIPS64",
  "SCMP_ARCH_MIPS64N32",
  "SCMP_ARCH_MIPSEL",
  "SCMP_ARCH_MIPSEL64",
  "SCMP_ARCH_MIPSEL64N32",
  "SCMP_ARCH_PPC",
  "SCMP_ARCH_PPC64",
  "SCMP_ARCH_PPC64LE",
  "SCMP_ARCH_S390",
  "SCMP_ARCH_S390X",
  "SCMP_ARCH_PARISC",
  "SCMP_ARCH_PARISC64",
  "SCMP_ARCH_RISCV64",
  "SCMP_ARCH_SH",
  "SCMP_ARCH_SHEB",
] as const;

export const AUDIT_ARCH = {
  X86_64: 0xc000003e,
  I386: 0x40000003,
  AARCH64: 0xc00000b7,
  ARM: 0x40000028,
} as const;

/** x32 syscalls run with AUDIT_ARCH_X86_64 and this bit set in nr (arch/x86/include/uapi/asm/unistd.h). */
export const X32_SYSCALL_BIT = 0x40000000;

export interface ArchDef {
  scmp: string;
  /** Value of seccomp_data.arch; x32 shares x86_64's. */
  audit: number;
  table: Readonly<Record<string, number>>;
  /** 64-bit ABIs compare both argument words; 32-bit ones only the low word (see compile-args.ts). */
  is64: boolean;
}

export const ARCH_DEFS: Record<string, ArchDef> = {
  SCMP_ARCH_X86_64: { scmp: "SCMP_ARCH_X86_64", audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X86_64, is64: true },
  SCMP_ARCH_X86: { scmp: "SCMP_ARCH_X86", audit: AUDIT_ARCH.I386, table: SYSCALLS_I386, is64: false },
  // libseccomp treats x32 as a 32-bit ABI for argument comparisons (arch-x32.c: ARCH_SIZE_32).
  SCMP_ARCH_X32: { scmp: "SCMP_ARCH_X32", audit: AUDIT_ARCH.X86_64, table: SYSCALLS_X32, is64: false },
  SCMP_ARCH_AARCH64: { scmp: "SCMP_ARCH_AARCH64", audit: AUDIT_ARCH.AARCH64, table: SYSCALLS_AARCH64, is64: true },
  SCMP_ARCH_ARM: { scmp: "SCMP_ARCH_ARM", audit: AUDIT_ARCH.ARM, table: SYSCALLS_ARM, is64: false },
};

/** Per native arch: its own SCMP name, the ABIs its kernel may run (and so a filter must judge), moby's name for it. */
export const FAMILIES: Record<NativeArch, { native: string; members: string[]; moby: string[] }> = {
  // moby compares includes/excludes "arches" with libseccomp's native name (amd64, arm64); the
  // kernel-style names are accepted too so a hand-written profile need not know the difference.
  x86_64: { native: "SCMP_ARCH_X86_64", members: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], moby: ["amd64", "x86_64"] },
  aarch64: { native: "SCMP_ARCH_AARCH64", members: ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"], moby: ["arm64", "aarch64"] },
};

export function isNativeArch(a: string): a is NativeArch {
  return a === "x86_64" || a === "aarch64";
}
