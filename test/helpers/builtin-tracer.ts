/**
 * Preloaded (bun --preload) by test/integration/start-builtins.test.ts: records
 * each call of one of JavaScriptCore's JavaScript-implemented builtins, and of
 * Bun's Buffer, and each Error made, whose caller is in nsbox's src/ (see
 * src/list.ts and src/native/fs.ts's readTextIfThere for why a start avoids them), and
 * writes the call sites to $NSBOX_BUILTIN_TRACE as JSON when the process exits.
 * Only for that test: it replaces the builtins with wrappers.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";

const SRC = `${resolve(import.meta.dir, "../../src")}/`;
/** The engine's Error, for the tracer's own stacks (the global one is replaced below). */
const RealError = globalThis.Error;
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
        const caller = new RealError().stack?.split("\n")[2]?.trim() ?? "";
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

// Errors made from src/ (a thrown errno error, a class of nsbox's own): a program's first
// Error costs Bun ~0.7-1.2 MiB of peak RSS, its stack-trace machinery (bench/trace-notes.md,
// "eighth stop"); where "not there" is the usual answer, src/ asks without one (readTextIfThere).
function errorMade(): void {
  if (busy) return;
  busy = true;
  // the first frame in src/ (below it: this function, the trap, the proxy's own frame)
  const caller =
    (new RealError().stack ?? "")
      .split("\n")
      .find((l) => l.includes(SRC))
      ?.trim() ?? "";
  if (caller) {
    const at = caller.slice(caller.indexOf(SRC) + SRC.length).replace(/\)$/, "");
    const list = (sites.Error ??= []);
    if (!list.includes(at)) list.push(at);
  }
  busy = false;
}
globalThis.Error = new Proxy(RealError, {
  construct(target, args, newTarget) {
    errorMade();
    return Reflect.construct(target, args, newTarget);
  },
  apply(target, self, args) {
    errorMade();
    return Reflect.apply(target, self, args);
  },
});

process.on("exit", () => {
  const out = process.env.NSBOX_BUILTIN_TRACE;
  if (out) writeFileSync(out, JSON.stringify(sites));
});
