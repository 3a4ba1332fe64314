/**
 * src/list.ts against Array.prototype's own methods: the same results, the same
 * callback arguments, on the shapes nsbox passes (dense arrays, empty ones,
 * tuples from Object.entries).
 */
import { describe, expect, test } from "bun:test";
import { every, filter, find, findIndex, flatMap, map, some, sorted, zeroPad } from "../../src/list.ts";

const inputs: unknown[][] = [[], [0], [1, 2, 3], ["", "a", "", "b"], [null, undefined, 0, false, "x", Number.NaN], Object.entries({ a: 1, b: 2 })];
const fns: ((x: unknown, i: number) => unknown)[] = [(x) => x, (_, i) => i % 2 === 0, (x) => typeof x === "string", (_, i) => [i, i], (x) => [x], Boolean];

describe("the same results as Array.prototype's methods", () => {
  test("map, filter, some, every, find, findIndex, flatMap", () => {
    for (const xs of inputs)
      for (const f of fns) {
        expect(map(xs, f)).toEqual(xs.map(f));
        expect(filter(xs, f)).toEqual(xs.filter(f));
        expect(some(xs, f)).toBe(xs.some(f));
        expect(every(xs, f)).toBe(xs.every(f));
        expect(find(xs, f)).toEqual(xs.find(f));
        expect(findIndex(xs, f)).toBe(xs.findIndex(f));
        expect(flatMap(xs, f)).toEqual(xs.flatMap(f));
      }
  });

  test("callbacks get the element and its index, in order, and some/every/find stop at the first answer", () => {
    const seen = (run: (f: (x: string, i: number) => boolean) => unknown) => {
      const calls: [string, number][] = [];
      run((x, i) => {
        calls.push([x, i]);
        return x === "b";
      });
      return calls;
    };
    const xs = ["a", "b", "c"];
    for (const [ours, theirs] of [
      [(f: (x: string, i: number) => boolean) => some(xs, f), (f: (x: string, i: number) => boolean) => xs.some(f)],
      [(f: (x: string, i: number) => boolean) => find(xs, f), (f: (x: string, i: number) => boolean) => xs.find(f)],
      [(f: (x: string, i: number) => boolean) => findIndex(xs, f), (f: (x: string, i: number) => boolean) => xs.findIndex(f)],
      [(f: (x: string, i: number) => boolean) => every(xs, (x, i) => !f(x, i)), (f: (x: string, i: number) => boolean) => xs.every((x, i) => !f(x, i))],
      [(f: (x: string, i: number) => boolean) => map(xs, f), (f: (x: string, i: number) => boolean) => xs.map(f)],
      [(f: (x: string, i: number) => boolean) => filter(xs, f), (f: (x: string, i: number) => boolean) => xs.filter(f)],
    ] as const)
      expect(seen(ours)).toEqual(seen(theirs));
  });

  test("sorted: sort()'s order for strings (UTF-16 code units) and with a comparator; stable; the input untouched", () => {
    const words = ["b", "a", "B", "", "é", "ab", "a", "z", "10", "9", "c *:* m", "c 1:3 rwm", "a *:* rwm"];
    const before = [...words];
    expect(sorted(words)).toEqual([...words].sort());
    expect(words).toEqual(before);
    const byLength = (a: string, b: string) => b.length - a.length;
    expect(sorted(words, byLength)).toEqual([...words].sort(byLength));
    expect(sorted([], byLength)).toEqual([]);
  });

  test("zeroPad as padStart(n, '0')", () => {
    for (const [s, n] of [
      ["", 2],
      ["f", 2],
      ["ff", 2],
      ["fff", 2],
      ["a80425fb", 8],
      ["0", 8],
    ] as const)
      expect(zeroPad(s, n)).toBe(s.padStart(n, "0"));
  });
});
