/**
 * OCI linux.seccomp -> a classic-BPF program for seccomp(SECCOMP_SET_MODE_FILTER).
 *
 * Shape of the program:
 *
 *   ld arch
 *   jeq NATIVE -> native section      (first: the hot path pays one compare)
 *   jeq COMPAT -> compat section      (only if the profile lists it)
 *   ret BAD_ARCH
 *   section: ld nr; binary search over the syscall numbers; ret <action>
 *
 * The search tree splits on number ranges, adjacent numbers with the same unconditional
 * action merged into one range (gaps get the default action), so a syscall costs
 * O(log ranges) jumps: about a dozen instructions for docker's profile, no more than
 * libseccomp's binary-tree filter that runc and crun load. Unconditionally decided
 * syscalls only ever see ld arch/nr, jeq/jge #k and ret #k, which is what lets the kernel's
 * action cache (5.11+) mark allowed ones allow-always and skip the filter for them.
 *
 * x86_64 also runs x32 syscalls: same AUDIT_ARCH_X86_64, nr with bit 0x40000000. The
 * native section splits on that bit first. Listing SCMP_ARCH_X32 judges them with the x32
 * table (docker's profile does); otherwise they get the bad-arch action, except nr -1 that
 * tracers use to skip a syscall, which gets the default action (libseccomp gen_bpf.c).
 */
import { actionRet, BAD_ARCH_RET } from "./actions.ts";
import { ARCH_DEFS, type ArchDef, FAMILIES, isNativeArch, X32_SYSCALL_BIT } from "./arches.ts";
import { Assembler, OP } from "./bpf.ts";
import { type ArgRule, emitArgRules } from "./compile-args.ts";
import { type Compiled, type LinuxSeccomp, type LinuxSyscall, type NativeArch, SeccompError } from "./types.ts";
import { checkAction, checkArchitecture, checkArgs, checkErrno, checkNames, toU64 } from "./validate.ts";

const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const U32_MAX = 0xffffffff;

/** Compiles an OCI linux.seccomp (from config.json or parseProfile) for a kernel of this native arch. Throws SeccompError. */
export function compileSeccomp(profile: LinuxSeccomp, nativeArch: NativeArch): Compiled {
  if (!isNativeArch(nativeArch)) throw new SeccompError(`seccomp: cannot build a filter for ${JSON.stringify(nativeArch)}: nsbox runs on x86_64 and aarch64`);
  const defaultRet = actionRet(checkAction(profile.defaultAction, "seccomp defaultAction"), checkErrno(profile.defaultErrnoRet, "seccomp defaultErrnoRet"));
  const rules = checkRules(profile.syscalls);
  const arches = filteredArches(
    (profile.architectures ?? []).map((a, i) => checkArchitecture(a, `seccomp architectures[${i}]`)),
    nativeArch,
  );

  const asm = new Assembler();
  asm.ld(OFFSET_ARCH);
  const sections = arches.filter((a) => a.scmp !== "SCMP_ARCH_X32");
  const x32 = arches.find((a) => a.scmp === "SCMP_ARCH_X32");
  for (const arch of sections) {
    const other = asm.label();
    asm.jump(OP.JEQ_K, arch.audit, null, other);
    asm.ld(OFFSET_NR);
    if (arch.scmp === "SCMP_ARCH_X86_64") {
      const high = asm.label();
      asm.jump(OP.JGE_K, X32_SYSCALL_BIT, high, null);
      emitTree(asm, segments(arch, rules, defaultRet, 0, X32_SYSCALL_BIT - 1));
      asm.place(high);
      if (x32) emitTree(asm, segments(x32, rules, defaultRet, X32_SYSCALL_BIT, U32_MAX, X32_SYSCALL_BIT));
      else emitTree(asm, [leaf(X32_SYSCALL_BIT, U32_MAX - 1, BAD_ARCH_RET), leaf(U32_MAX, U32_MAX, defaultRet)]);
    } else {
      emitTree(asm, segments(arch, rules, defaultRet, 0, U32_MAX));
    }
    asm.place(other);
  }
  asm.ret(BAD_ARCH_RET);
  const { filter, instructions } = asm.assemble();
  return { filter, instructions, unknown: unknownNames(rules, arches) };
}

/**
 * The ABIs the filter judges: the native one always (libseccomp's filter context always
 * holds it, so runc filters it even if "architectures" forgets it), then the listed ones
 * this kernel can run; others (a profile written for several machines) are ignored.
 */
export function filteredArches(listed: string[], native: NativeArch): ArchDef[] {
  const family = FAMILIES[native];
  const names = [family.native, ...family.members.filter((m) => m !== family.native && listed.includes(m))];
  return names.map((n) => ARCH_DEFS[n]!);
}

/** Names no judged ABI knows, once each, in profile order. */
export function unknownNames(syscalls: LinuxSyscall[], arches: ArchDef[]): string[] {
  const out = new Set<string>();
  for (const s of syscalls) for (const n of s.names) if (!arches.some((a) => Object.hasOwn(a.table, n))) out.add(n);
  return [...out];
}

interface Rule extends LinuxSyscall {
  ret: number;
  conds: ArgRule["conds"];
}

function checkRules(syscalls: LinuxSyscall[] | undefined): Rule[] {
  if (syscalls !== undefined && syscalls !== null && !Array.isArray(syscalls)) throw new SeccompError(`seccomp "syscalls" must be a list of rules`);
  return (syscalls ?? []).map((s, i) => {
    const at = `seccomp syscalls[${i}]`;
    const names = checkNames(s?.names, at);
    const action = checkAction(s.action, `${at}.action`);
    const ret = actionRet(action, checkErrno(s.errnoRet, `${at}.errnoRet`));
    const conds = (checkArgs(s.args, at) ?? []).map((a) => ({ index: a.index, op: a.op, value: toU64(a.value), valueTwo: toU64(a.valueTwo) }));
    return { names, action, ret, conds };
  });
}

/** A range of syscall numbers [lo, hi] decided by one ret, or (one number) by argument rules. */
interface Segment {
  lo: number;
  hi: number;
  ret?: number;
  args?: { rules: ArgRule[]; fallback: number; is64: boolean };
}

const leaf = (lo: number, hi: number, ret: number): Segment => ({ lo, hi, ret });

/**
 * The decision for every number in [from, to] on one ABI, as sorted, merged segments.
 * `bias` is ORed into table numbers (the x32 bit).
 */
function segments(arch: ArchDef, rules: Rule[], defaultRet: number, from: number, to: number, bias = 0): Segment[] {
  const byNr = new Map<number, Rule[]>();
  for (const r of rules) {
    for (const name of r.names) {
      if (!Object.hasOwn(arch.table, name)) continue;
      const nr = (arch.table[name]! | bias) >>> 0;
      const list = byNr.get(nr) ?? [];
      if (!list.includes(r)) list.push(r);
      byNr.set(nr, list);
    }
  }
  const out: Segment[] = [];
  const push = (s: Segment) => {
    const last = out.at(-1);
    if (last && s.ret !== undefined && last.ret === s.ret) last.hi = s.hi;
    else out.push(s);
  };
  let at = from;
  for (const nr of [...byNr.keys()].filter((n) => n >= from && n <= to).sort((a, b) => a - b)) {
    if (nr > at) push(leaf(at, nr - 1, defaultRet));
    push(decide(nr, byNr.get(nr)!, defaultRet, arch.is64));
    at = nr + 1;
  }
  if (at <= to) push(leaf(at, to, defaultRet));
  return out;
}

/**
 * One syscall's decision. Rules count in profile order and the first that holds wins, so
 * an unconditional rule ends the list: before any conditional rule it decides alone (a
 * plain ret the action cache can see through), after them it is their fallback.
 */
function decide(nr: number, rules: Rule[], defaultRet: number, is64: boolean): Segment {
  const conditional: ArgRule[] = [];
  let fallback = defaultRet;
  for (const r of rules) {
    if (r.conds.length === 0) {
      fallback = r.ret;
      break;
    }
    conditional.push({ ret: r.ret, conds: r.conds });
  }
  if (conditional.length === 0 || conditional.every((r) => r.ret === fallback)) return leaf(nr, nr, fallback);
  return { lo: nr, hi: nr, args: { rules: conditional, fallback, is64 } };
}

/** Binary search over the segments: each inner node is one `jge`; leaves are rets or argument checks. */
function emitTree(asm: Assembler, segs: Segment[]): void {
  if (segs.length === 1) {
    const s = segs[0]!;
    if (s.args) emitArgRules(asm, s.args.rules, s.args.fallback, s.args.is64);
    else asm.ret(s.ret!);
    return;
  }
  const mid = segs.length >> 1;
  const right = asm.label();
  asm.jump(OP.JGE_K, segs[mid]!.lo, right, null);
  emitTree(asm, segs.slice(0, mid));
  asm.place(right);
  emitTree(asm, segs.slice(mid));
}
