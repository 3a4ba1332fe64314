/**
 * Array.prototype's map, filter, some, every, find, findIndex and flatMap as
 * plain loops, for the code that every start runs (run, exec, the OCI verbs).
 *
 * Why: JavaScriptCore implements these in JavaScript and compiles each one from
 * source at its first call in a process; nsbox's own functions come compiled in
 * the binary (bun build --bytecode). Measured in nsbox (issue 14): two such
 * first calls at the top level of main's modules (a map and a flatMap) put
 * `--version`'s first line 3.3 ms later (41 alternated runs); with none left on
 * run's path, its last trace mark came 2.6 ms earlier (41 traced pairs) and its
 * wall time 2.0 ms (81 pairs). The same goes for String's padStart and
 * Promise.race. test/integration/start-builtins.test.ts keeps them off the path
 * of run and exec (a first run's seccomp compile, once per host, may use them).
 *
 * Elsewhere (pulls, tar, images, the test suite) the methods are fine.
 */

export function map<T, U>(xs: readonly T[], f: (x: T, i: number) => U): U[] {
  const out: U[] = new Array(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = f(xs[i] as T, i);
  return out;
}

export function filter<T, S extends T>(xs: readonly T[], f: (x: T, i: number) => x is S): S[];
export function filter<T>(xs: readonly T[], f: (x: T, i: number) => unknown): T[];
export function filter<T>(xs: readonly T[], f: (x: T, i: number) => unknown): T[] {
  const out: T[] = [];
  for (let i = 0; i < xs.length; i++) if (f(xs[i] as T, i)) out.push(xs[i] as T);
  return out;
}

export function flatMap<T, U>(xs: readonly T[], f: (x: T, i: number) => U | readonly U[]): U[] {
  const out: U[] = [];
  for (let i = 0; i < xs.length; i++) {
    const r = f(xs[i] as T, i);
    if (Array.isArray(r)) for (const u of r as readonly U[]) out.push(u);
    else out.push(r as U);
  }
  return out;
}

export function some<T>(xs: readonly T[], f: (x: T, i: number) => unknown): boolean {
  for (let i = 0; i < xs.length; i++) if (f(xs[i] as T, i)) return true;
  return false;
}

export function every<T>(xs: readonly T[], f: (x: T, i: number) => unknown): boolean {
  for (let i = 0; i < xs.length; i++) if (!f(xs[i] as T, i)) return false;
  return true;
}

export function find<T>(xs: readonly T[], f: (x: T, i: number) => unknown): T | undefined {
  for (let i = 0; i < xs.length; i++) if (f(xs[i] as T, i)) return xs[i];
  return undefined;
}

export function findIndex<T>(xs: readonly T[], f: (x: T, i: number) => unknown): number {
  for (let i = 0; i < xs.length; i++) if (f(xs[i] as T, i)) return i;
  return -1;
}

/** The distinct elements, in the order first seen ([...new Set(xs)] without an iterator). */
export function unique<T>(xs: readonly T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < xs.length; i++) if (!out.includes(xs[i] as T)) out.push(xs[i] as T);
  return out;
}

/**
 * A sorted copy (insertion sort: stable, for the few elements a start sorts);
 * without cmp, strings by UTF-16 code units, as sort() orders them.
 */
export function sorted<T>(xs: readonly T[], cmp: (a: T, b: T) => number = (a, b) => (String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0)): T[] {
  const out = xs.slice();
  for (let i = 1; i < out.length; i++) {
    const x = out[i] as T;
    let j = i - 1;
    while (j >= 0 && cmp(out[j] as T, x) > 0) {
      out[j + 1] = out[j] as T;
      j--;
    }
    out[j + 1] = x;
  }
  return out;
}

/** s.padStart(n, "0") for a number's digits. */
export function zeroPad(s: string, n: number): string {
  let out = s;
  while (out.length < n) out = `0${out}`;
  return out;
}
