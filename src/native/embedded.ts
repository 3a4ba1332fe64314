/**
 * The shim and the helper, as the Makefile built them, embedded in nsbox as
 * base64 text: an import of text is a string in memory, where an embedded file
 * (/$bunfs) can only be read through node:fs, which nsbox's start does without
 * (see src/native/fs.ts). Decoding the two (40 KB) takes microseconds.
 */
import helper from "../../build/nsbox-helper.so.b64" with { type: "text" };
import shim from "../../build/nsbox-shim.b64" with { type: "text" };

export const helperBytes = (): Buffer => Buffer.from(helper, "base64");
export const shimBytes = (): Buffer => Buffer.from(shim, "base64");
