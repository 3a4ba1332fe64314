/**
 * A tiny classic-BPF assembler: instructions with symbolic forward labels, laid out into
 * struct sock_filter[] (u16 code, u8 jt, u8 jf, u32 k; 8 bytes, little-endian as the
 * kernel reads it on x86_64 and aarch64).
 *
 * Classic BPF only jumps forward, and a conditional jump reaches at most 255 instructions
 * ahead (jt/jf are u8). A farther target gets a `ja` trampoline (32-bit offset) placed right
 * after the jump, so only the path that takes the far branch pays one instruction.
 *
 * Only opcodes the kernel's seccomp checker accepts and its action-cache emulator
 * understands (kernel/seccomp.c seccomp_check_filter, seccomp_is_const_allow) are emitted:
 * ld [abs], and #k, ja, jeq/jgt/jge/jset #k, ret #k.
 */
import { SeccompError } from "./types.ts";

export const OP = {
  LD_W_ABS: 0x20, // BPF_LD | BPF_W | BPF_ABS
  ALU_AND_K: 0x54, // BPF_ALU | BPF_AND | BPF_K
  JA: 0x05, // BPF_JMP | BPF_JA
  JEQ_K: 0x15, // BPF_JMP | BPF_JEQ | BPF_K
  JGT_K: 0x25,
  JGE_K: 0x35,
  JSET_K: 0x45,
  RET_K: 0x06, // BPF_RET | BPF_K
} as const;

/** The kernel refuses longer programs (BPF_MAXINSNS, include/uapi/linux/bpf_common.h). */
export const BPF_MAXINSNS = 4096;

export type Label = number;

interface Insn {
  code: number;
  k: number;
  /** Conditional jumps: where each outcome goes; null = the next instruction. */
  jt?: Label | null;
  jf?: Label | null;
  /** ja: its target. */
  target?: Label;
}
type Item = { label: Label } | { insn: Insn };

export class Assembler {
  private items: Item[] = [];
  private labels = 0;

  label(): Label {
    return this.labels++;
  }
  place(l: Label): void {
    this.items.push({ label: l });
  }
  ld(offset: number): void {
    this.items.push({ insn: { code: OP.LD_W_ABS, k: offset } });
  }
  and(k: number): void {
    this.items.push({ insn: { code: OP.ALU_AND_K, k: k >>> 0 } });
  }
  /** A conditional jump on the accumulator against k; null means "fall through". */
  jump(code: number, k: number, jt: Label | null, jf: Label | null): void {
    this.items.push({ insn: { code, k: k >>> 0, jt, jf } });
  }
  ja(target: Label): void {
    this.items.push({ insn: { code: OP.JA, k: 0, target } });
  }
  ret(k: number): void {
    this.items.push({ insn: { code: OP.RET_K, k: k >>> 0 } });
  }

  /** Lays the program out (inserting trampolines until every jump fits) and encodes it. */
  assemble(): { filter: Uint8Array; instructions: number } {
    for (;;) {
      const { pos, count } = this.layout();
      const far: [index: number, at: number][] = [];
      let n = 0;
      for (const [i, item] of this.items.entries()) {
        if (!("insn" in item)) continue;
        const { jt, jf } = item.insn;
        const reach = (l: Label | null | undefined) => l !== null && l !== undefined && pos.get(l)! - n - 1 > 255;
        if (reach(jt) || reach(jf)) far.push([i, n]);
        n++;
      }
      if (far.length === 0) return this.encode(pos, count);
      // Insert from the back so earlier indexes stay valid.
      for (const [i, at] of far.reverse()) this.items.splice(i + 1, 0, ...this.trampolines((this.items[i] as { insn: Insn }).insn, pos, at));
    }
  }

  /** Instruction index of every label, and the instruction count. */
  private layout(): { pos: Map<Label, number>; count: number } {
    const pos = new Map<Label, number>();
    let n = 0;
    for (const item of this.items) {
      if ("label" in item) pos.set(item.label, n);
      else n++;
    }
    return { pos, count: n };
  }

  /** `ja` stubs for the far outcomes of insn; a fall-through outcome is pinned to a label after them. */
  private trampolines(insn: Insn, pos: Map<Label, number>, n: number): Item[] {
    const out: Item[] = [];
    let after: Label | undefined;
    const fix = (field: "jt" | "jf") => {
      const target = insn[field];
      if (target === null || target === undefined) {
        after ??= this.label();
        insn[field] = after;
      } else if (pos.get(target)! - n - 1 > 255) {
        const stub = this.label();
        out.push({ label: stub }, { insn: { code: OP.JA, k: 0, target } });
        insn[field] = stub;
      }
    };
    fix("jt");
    fix("jf");
    if (after !== undefined) out.push({ label: after });
    return out;
  }

  private encode(pos: Map<Label, number>, count: number): { filter: Uint8Array; instructions: number } {
    if (count > BPF_MAXINSNS) {
      throw new SeccompError(
        `seccomp profile compiles to ${count} BPF instructions, more than the kernel's limit of ${BPF_MAXINSNS}: merge rules or drop argument conditions`,
      );
    }
    const filter = new Uint8Array(count * 8);
    const view = new DataView(filter.buffer);
    let n = 0;
    const offset = (l: Label | null | undefined, limit: number): number => {
      if (l === null || l === undefined) return 0;
      const at = pos.get(l);
      if (at === undefined || at >= count) throw new Error(`bpf: label ${l} is not placed before an instruction`);
      const off = at - n - 1;
      if (off < 0 || off > limit) throw new Error(`bpf: jump from ${n} to ${at} is out of range`);
      return off;
    };
    for (const item of this.items) {
      if (!("insn" in item)) continue;
      const { code, jt, jf, target } = item.insn;
      const k = code === OP.JA ? offset(target, 0xffffffff) : item.insn.k;
      view.setUint16(n * 8, code, true);
      view.setUint8(n * 8 + 2, code === OP.JA ? 0 : offset(jt, 255));
      view.setUint8(n * 8 + 3, code === OP.JA ? 0 : offset(jf, 255));
      view.setUint32(n * 8 + 4, k, true);
      n++;
    }
    return { filter, instructions: count };
  }
}
