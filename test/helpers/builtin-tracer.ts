/**
 * Preloaded (bun --preload) by test/integration/start-builtins.test.ts: records
 * each call of one of JavaScriptCore's JavaScript-implemented builtins, and of
 * Bun's Buffer, whose caller is in nsbox's src/ (see src/list.ts for why a start
 * avoids them), and
 * writes the call sites to $NSBOX_BUILTIN_TRACE as JSON when the process exits.
 * Only for that test: it replaces the builtins with wrappers.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";

const SRC = `${resolve(import.meta.dir, "../../src")}/`;
const sites: Record<string, string[]> = {};
let busy = false;

function wrap(owner: object, name: string, label: string): void {
  const orig = (owner as Record<string, unknown>)[name];
  if (typeof orig !== "function") return;
  Object.defineProperty(owner, name, {
    configurable: true,
    writable: true,
    value: function (this: unknown, ...args: unknown[]) {
      if (!busy) {
        busy = true;
        // [0] "Error", [1] this wrapper, [2] its caller
        const caller = new Error().stack?.split("\n")[2]?.trim() ?? "";
        if (caller.includes(SRC)) {
          const at = caller.slice(caller.indexOf(SRC) + SRC.length).replace(/\)$/, "");
          const list = (sites[label] ??= []);
          if (!list.includes(at)) list.push(at);
        }
        busy = false;
      }
      return (orig as (...a: unknown[]) => unknown).apply(this, args);
    },
  });
}

for (const n of [
  "map",
  "filter",
  "reduce",
  "reduceRight",
  "flatMap",
  "flat",
  "some",
  "every",
  "find",
  "findIndex",
  "findLast",
  "findLastIndex",
  "forEach",
  "sort",
  "fill",
  "toSorted",
])
  wrap(Array.prototype, n, `Array.prototype.${n}`);
for (const n of ["padStart", "padEnd", "replaceAll", "matchAll", "repeat"]) wrap(String.prototype, n, `String.prototype.${n}`);
wrap(Array, "from", "Array.from");
// Bun's Buffer: Buffer.from's first call costs ~0.4 ms (src/native/fs.ts uses Uint8Array, TextEncoder/Decoder)
for (const n of ["from", "alloc", "allocUnsafe", "concat", "byteLength"]) wrap(Buffer, n, `Buffer.${n}`);
for (const n of ["toString", "write", "readUInt16LE", "readUInt32LE", "readBigInt64LE", "readBigUInt64LE"]) wrap(Buffer.prototype, n, `Buffer.prototype.${n}`);
wrap(Object, "fromEntries", "Object.fromEntries");
for (const n of ["all", "allSettled", "race", "any"]) wrap(Promise, n, `Promise.${n}`);

process.on("exit", () => {
  const out = process.env.NSBOX_BUILTIN_TRACE;
  if (out) writeFileSync(out, JSON.stringify(sites));
});
