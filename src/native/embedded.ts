/**
 * The shim and the helper, as the Makefile built them, embedded in nsbox as
 * base64 string constants of generated modules (build/*.b64.ts): an embedded
 * file (/$bunfs) can only be read through node:fs, which nsbox's start does
 * without (see src/native/fs.ts), and a `with { type: "text" }` import is a
 * require() of such a file at run time (require's first call compiles it: ~0.2
 * ms). Decoding the two (40 KB) takes microseconds.
 */
import helper from "../../build/nsbox-helper.so.b64.ts";
import shim from "../../build/nsbox-shim.b64.ts";

// (Uint8Array.fromBase64, not Buffer.from: the latter's first call in a process costs ~0.4 ms)
const fromBase64 = (text: string): Uint8Array => (Uint8Array as unknown as { fromBase64(s: string): Uint8Array }).fromBase64(text);
export const helperBytes = (): Uint8Array => fromBase64(helper);
export const shimBytes = (): Uint8Array => fromBase64(shim);
