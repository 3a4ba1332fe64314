/**
 * The device rules as a cgroup v2 device program: BPF_PROG_TYPE_CGROUP_DEVICE,
 * eBPF built here as bytes (the kernel runs it on every mknod and every open of
 * a device node by a process in the cgroup; it returns 1 to allow, 0 to deny).
 * The same shape as runc's devicefilter.go (from crun's ebpf.c), fed with the
 * same reduced rule set (effectiveRules: runc's emulator), so both cgroup
 * layouts decide alike.
 *
 * The context is struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor },
 * access_type = device type (low 16 bits: BPF_DEVCG_DEV_BLOCK 1, _CHAR 2) |
 * access (high 16 bits: BPF_DEVCG_ACC_MKNOD 1, _READ 2, _WRITE 4).
 *
 *   r2 = type, r3 = access, r4 = major, r5 = minor
 *   for each exception:  if type, access, major and minor match: return !default
 *   return default
 *
 * "access matches" is the kernel v1 controller's test: an allow exception must
 * grant all the access asked (an open for reading and writing asks both at once),
 * a deny exception refuses when it covers any part of it.
 */
import { type DeviceRule, effectiveRules } from "./devices.ts";

/** An eBPF instruction: opcode, dst and src registers, 16-bit offset, 32-bit immediate. */
export interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

// opcodes (linux/bpf.h, linux/bpf_common.h)
const LDX_MEM_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
const ALU32_AND_K = 0x54; // BPF_ALU | BPF_AND | BPF_K: dst = (u32)dst & imm
const ALU32_RSH_K = 0x74; // BPF_ALU | BPF_RSH | BPF_K: dst = (u32)dst >> imm
const ALU32_MOV_K = 0xb4; // BPF_ALU | BPF_MOV | BPF_K: dst = imm
const ALU32_MOV_X = 0xbc; // BPF_ALU | BPF_MOV | BPF_X: dst = (u32)src
const JNE_K = 0x55; // BPF_JMP | BPF_JNE | BPF_K: if dst != imm: pc += off
const JNE_X = 0x5d; // BPF_JMP | BPF_JNE | BPF_X: if dst != src: pc += off
const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K: if dst == imm: pc += off
const EXIT = 0x95; // BPF_JMP | BPF_EXIT: return r0

export const BPF_DEVCG_DEV_BLOCK = 1;
export const BPF_DEVCG_DEV_CHAR = 2;
export const BPF_DEVCG_ACC_MKNOD = 1;
export const BPF_DEVCG_ACC_READ = 2;
export const BPF_DEVCG_ACC_WRITE = 4;

const ACC: Record<string, number> = { m: BPF_DEVCG_ACC_MKNOD, r: BPF_DEVCG_ACC_READ, w: BPF_DEVCG_ACC_WRITE };
const ALL = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

const I = (code: number, dst: number, src: number, off: number, imm: number): Insn => ({ code, dst, src, off, imm });

/** The device program for a rule list, as instructions (jump offsets resolved). */
export function deviceFilterInsns(rules: readonly DeviceRule[]): Insn[] {
  const set = effectiveRules(rules);
  const out: Insn[] = [
    I(LDX_MEM_W, 2, 1, 0, 0),
    I(ALU32_AND_K, 2, 0, 0, 0xffff),
    I(LDX_MEM_W, 3, 1, 0, 0),
    I(ALU32_RSH_K, 3, 0, 0, 16),
    I(LDX_MEM_W, 4, 1, 4, 0),
    I(LDX_MEM_W, 5, 1, 8, 0),
  ];
  for (const e of set.exceptions) {
    // every jump of a block goes to the next block: patched once the block's length is known
    const block: Insn[] = [I(JNE_K, 2, 0, 0, e.type === "b" ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR)];
    const acc = [...(e.access ?? "rwm")].reduce((a, c) => a | (ACC[c] ?? 0), 0);
    if (acc !== ALL) {
      block.push(I(ALU32_MOV_X, 1, 3, 0, 0), I(ALU32_AND_K, 1, 0, 0, acc));
      // allow: (access & acc) == access, all of it granted; deny: (access & acc) != 0, any of it refused
      block.push(e.allow ? I(JNE_X, 1, 3, 0, 0) : I(JEQ_K, 1, 0, 0, 0));
    }
    if (e.major !== undefined) block.push(I(JNE_K, 4, 0, 0, e.major));
    if (e.minor !== undefined) block.push(I(JNE_K, 5, 0, 0, e.minor));
    block.push(I(ALU32_MOV_K, 0, 0, 0, e.allow ? 1 : 0), I(EXIT, 0, 0, 0, 0));
    block.forEach((insn, i) => {
      if (insn.code === JNE_K || insn.code === JNE_X || insn.code === JEQ_K) insn.off = block.length - (i + 1);
    });
    out.push(...block);
  }
  out.push(I(ALU32_MOV_K, 0, 0, 0, set.defaultAllow ? 1 : 0), I(EXIT, 0, 0, 0, 0));
  return out;
}

/** Instructions as the kernel takes them: 8 bytes each, little-endian fields. */
export function encodeInsns(insns: readonly Insn[]): Uint8Array {
  const bytes = new Uint8Array(insns.length * 8);
  const v = new DataView(bytes.buffer);
  insns.forEach((x, i) => {
    v.setUint8(i * 8, x.code);
    v.setUint8(i * 8 + 1, ((x.src & 0xf) << 4) | (x.dst & 0xf));
    v.setInt16(i * 8 + 2, x.off, true);
    v.setInt32(i * 8 + 4, x.imm | 0, true);
  });
  return bytes;
}

/** The program's bytes for a rule list. */
export function deviceFilterProgram(rules: readonly DeviceRule[]): Uint8Array {
  return encodeInsns(deviceFilterInsns(rules));
}
