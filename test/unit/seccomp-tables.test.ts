import { dlopen, FFIType } from "bun:ffi";
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { MOBY_DEFAULT_PROFILE } from "../../src/security/seccomp/default-profile.ts";
import { SYSCALLS_AARCH64 } from "../../src/security/seccomp/syscalls-aarch64.ts";
import { SYSCALLS_ARM } from "../../src/security/seccomp/syscalls-arm.ts";
import { SYSCALLS_I386 } from "../../src/security/seccomp/syscalls-i386.ts";
import { SYSCALLS_X32 } from "../../src/security/seccomp/syscalls-x32.ts";
import { SYSCALLS_X86_64 } from "../../src/security/seccomp/syscalls-x86_64.ts";

const TABLES = { x86_64: SYSCALLS_X86_64, i386: SYSCALLS_I386, x32: SYSCALLS_X32, aarch64: SYSCALLS_AARCH64, arm: SYSCALLS_ARM };

describe("syscall tables", () => {
  test("well-known numbers", () => {
    expect(SYSCALLS_X86_64.getppid).toBe(110);
    expect(SYSCALLS_X86_64.clone3).toBe(435);
    expect(SYSCALLS_X86_64.read).toBe(0);
    expect(SYSCALLS_X86_64.mount).toBe(165);
    expect(SYSCALLS_I386.getppid).toBe(64);
    expect(SYSCALLS_I386.mount).toBe(21);
    expect(SYSCALLS_I386.socketcall).toBe(102);
    expect(SYSCALLS_AARCH64.getppid).toBe(173);
    expect(SYSCALLS_AARCH64.clone3).toBe(435);
    expect(SYSCALLS_AARCH64.openat).toBe(56);
    expect(SYSCALLS_ARM.getppid).toBe(64);
    expect(SYSCALLS_ARM.cacheflush).toBe(0x0f0002);
    expect(SYSCALLS_ARM.sync_file_range2).toBe(SYSCALLS_ARM.arm_sync_file_range!);
    // x32 numbers are stored without the 0x40000000 bit; its own calls start at 512.
    expect(SYSCALLS_X32.getppid).toBe(110);
    expect(SYSCALLS_X32.rt_sigaction).toBe(512);
  });

  test("numbers are unique per table, except for aliases of one call", () => {
    for (const [arch, table] of Object.entries(TABLES)) {
      const seen = new Map<number, string>();
      for (const [name, nr] of Object.entries(table)) {
        expect(Number.isInteger(nr) && nr >= 0).toBe(true);
        const other = seen.get(nr);
        if (other) expect(`${arch}: ${other}/${name}`).toBe("arm: arm_sync_file_range/sync_file_range2");
        seen.set(nr, name);
      }
    }
  });

  test("every name moby's profile uses is known on x86_64 or aarch64 families, but the other arches' own calls", () => {
    const names = new Set(MOBY_DEFAULT_PROFILE.syscalls!.flatMap((s) => s.names ?? []));
    const unknown = [...names].filter((n) => !Object.values(TABLES).some((t) => Object.hasOwn(t, n))).sort();
    expect(unknown).toEqual(["riscv_flush_icache", "riscv_hwprobe", "s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr", "swapcontext"]);
  });

  // Cross-check with the host's kernel headers when they are installed (they may be older: only compare what they define).
  const headers: [string, Readonly<Record<string, number>>, RegExp][] = [
    ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", SYSCALLS_X86_64, /#define __NR_(\w+) (\d+)/g],
    ["/usr/include/x86_64-linux-gnu/asm/unistd_32.h", SYSCALLS_I386, /#define __NR_(\w+) (\d+)/g],
    ["/usr/include/x86_64-linux-gnu/asm/unistd_x32.h", SYSCALLS_X32, /#define __NR_(\w+) \(__X32_SYSCALL_BIT \+ (\d+)\)/g],
  ];
  for (const [path, table, re] of headers) {
    test.if(existsSync(path))(`agrees with ${path}`, () => {
      let compared = 0;
      for (const m of readFileSync(path, "utf8").matchAll(re)) {
        expect(`${m[1]}=${table[m[1]!]}`).toBe(`${m[1]}=${m[2]}`);
        compared++;
      }
      expect(compared).toBeGreaterThan(300);
    });
  }
});

// Cross-check with the host's libseccomp (runc's and crun's table) when installed; it may be older: compare what it knows.
const LIBSECCOMP = ["/lib/x86_64-linux-gnu/libseccomp.so.2", "/usr/lib/x86_64-linux-gnu/libseccomp.so.2", "/lib/aarch64-linux-gnu/libseccomp.so.2"].find((p) =>
  existsSync(p),
);
test.if(LIBSECCOMP !== undefined)("agrees with the host's libseccomp", () => {
  const S = dlopen(LIBSECCOMP!, { seccomp_syscall_resolve_name_arch: { args: [FFIType.u32, FFIType.cstring], returns: FFIType.i32 } }).symbols;
  const tokens = { x86_64: 0xc000003e, i386: 0x40000003, x32: 0x4000003e, aarch64: 0xc00000b7, arm: 0x40000028 };
  for (const [arch, table] of Object.entries(TABLES)) {
    let compared = 0;
    for (const [name, nr] of Object.entries(table)) {
      const theirs = S.seccomp_syscall_resolve_name_arch(tokens[arch as keyof typeof tokens], Buffer.from(`${name}\0`));
      if (theirs < 0) continue; // unknown to that version, or a pseudo-number
      expect(`${arch} ${name}=${arch === "x32" ? theirs & ~0x40000000 : theirs}`).toBe(`${arch} ${name}=${nr}`);
      compared++;
    }
    expect(compared).toBeGreaterThan(250);
  }
});
