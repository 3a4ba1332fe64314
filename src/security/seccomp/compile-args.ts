/**
 * Argument conditions of one syscall, with libseccomp's semantics.
 *
 * seccomp_data.args[i] is a u64 at offset 16 + 8*i; on little-endian machines the low word
 * comes first and the high word is at +4. BPF compares 32 bits at a time, so on a 64-bit
 * ABI each comparison is done on both words (high first, like libseccomp's
 * _db_rule_gen_64): EQ/NE need both equal; GT/GE/LT/LE decide on the high word unless it
 * ties; MASKED_EQ compares (arg & mask) with (datum & mask) per word and skips a word whose
 * mask is 0.
 *
 * On the 32-bit compat ABIs (i386, arm, and x32 which libseccomp also treats as 32-bit)
 * only the low word is compared and the value is truncated to 32 bits, exactly as
 * libseccomp's _db_rule_gen_32 does: the kernel zero-extends a compat task's registers into
 * seccomp_data, so the high word is always 0 there.
 *
 * Rules of one syscall are tried in profile order and the first whose conditions all hold
 * decides (conditions AND, rules OR); when none holds, the fallback (the default action,
 * or the syscall's unconditional rule if it has one) decides.
 */
import type { Assembler, Label } from "./bpf.ts";
import { OP } from "./bpf.ts";
import type { SeccompOperator } from "./types.ts";

export interface Cond {
  index: number;
  op: SeccompOperator;
  value: bigint;
  valueTwo: bigint;
}

export interface ArgRule {
  ret: number;
  conds: Cond[];
}

const lo = (v: bigint) => Number(v & 0xffffffffn);
const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn);

/** Emits the rule chain of one syscall; every path ends in a ret. */
export function emitArgRules(asm: Assembler, rules: ArgRule[], fallbackRet: number, is64: boolean): void {
  for (const rule of rules) {
    const next = asm.label();
    for (const c of rule.conds) emitCond(asm, c, is64, next);
    asm.ret(rule.ret);
    asm.place(next);
  }
  asm.ret(fallbackRet);
}

/** Falls through when the condition holds, jumps to `fail` when it does not. */
function emitCond(asm: Assembler, c: Cond, is64: boolean, fail: Label): void {
  const ok = asm.label();
  const offLo = 16 + 8 * c.index;
  const offHi = offLo + 4;
  const v = c.value;
  if (!is64) {
    emitWord(asm, c, offLo, lo(v), lo(c.valueTwo), ok, fail);
  } else if (c.op === "SCMP_CMP_MASKED_EQ") {
    const mask = v;
    const datum = c.valueTwo & mask;
    if (hi(mask) !== 0) {
      asm.ld(offHi);
      asm.and(hi(mask));
      asm.jump(OP.JEQ_K, hi(datum), null, fail);
    }
    if (lo(mask) !== 0) {
      asm.ld(offLo);
      asm.and(lo(mask));
      asm.jump(OP.JEQ_K, lo(datum), ok, fail);
    }
  } else {
    asm.ld(offHi);
    switch (c.op) {
      case "SCMP_CMP_EQ":
        asm.jump(OP.JEQ_K, hi(v), null, fail);
        break;
      case "SCMP_CMP_NE":
        asm.jump(OP.JEQ_K, hi(v), null, ok);
        break;
      case "SCMP_CMP_GT":
      case "SCMP_CMP_GE":
        // high word above: holds; below: fails; equal: the low word decides.
        asm.jump(OP.JGT_K, hi(v), ok, null);
        asm.jump(OP.JEQ_K, hi(v), null, fail);
        break;
      case "SCMP_CMP_LT":
      case "SCMP_CMP_LE":
        asm.jump(OP.JGT_K, hi(v), fail, null);
        asm.jump(OP.JEQ_K, hi(v), null, ok);
        break;
    }
    emitWord(asm, c, offLo, lo(v), 0, ok, fail);
  }
  asm.place(ok);
}

/** One 32-bit comparison of the word at `off` with `value` (MASKED_EQ: mask `value`, datum `datum`). */
function emitWord(asm: Assembler, c: Cond, off: number, value: number, datum: number, ok: Label, fail: Label): void {
  if (c.op === "SCMP_CMP_MASKED_EQ") {
    if (value === 0) return; // (x & 0) == (d & 0) always holds: libseccomp emits nothing either
    asm.ld(off);
    asm.and(value);
    asm.jump(OP.JEQ_K, (datum & value) >>> 0, ok, fail);
    return;
  }
  // [opcode, whether the jump's true branch means the condition holds]: LT/LE are the negations of GE/GT.
  const [code, holdsOnJump] = {
    SCMP_CMP_EQ: [OP.JEQ_K, true],
    SCMP_CMP_NE: [OP.JEQ_K, false],
    SCMP_CMP_GT: [OP.JGT_K, true],
    SCMP_CMP_GE: [OP.JGE_K, true],
    SCMP_CMP_LT: [OP.JGE_K, false],
    SCMP_CMP_LE: [OP.JGT_K, false],
  }[c.op] as [number, boolean];
  asm.ld(off);
  asm.jump(code, value, holdsOnJump ? ok : fail, holdsOnJump ? fail : ok);
}
