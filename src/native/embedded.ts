/**
 * The shim and the helper, as the Makefile built them, embedded in nsbox as hex
 * string constants of generated modules (build/*.hex.ts): an embedded file
 * (/$bunfs) can only be read through node:fs, which nsbox's start does without
 * (see src/native/fs.ts), and a `with { type: "text" }` import is a require() of
 * such a file at run time (require's first call compiles it: ~0.2 ms).
 * Uint8Array.fromHex decodes the two (40 KB) in ~0.01 ms; fromBase64 took 0.4 ms
 * and Buffer.from 0.5 ms (its first call in a process compiles it).
 */
import helper, { sha256 as helperSha } from "../../build/nsbox-helper.so.hex.ts";
import shim from "../../build/nsbox-shim.hex.ts";

const fromHex = (text: string): Uint8Array => (Uint8Array as unknown as { fromHex(s: string): Uint8Array }).fromHex(text);
export const helperBytes = (): Uint8Array => fromHex(helper);
/** The helper's sha256 (hex), computed by make: the name of its copy in the data root (src/native/addon.ts). */
export const helperSha256 = helperSha;
export const shimBytes = (): Uint8Array => fromHex(shim);
