/** docker's units: sizes ("64m", "1g", "512k", "100" bytes) and cpu counts ("0.5"). */
import { fail } from "../errors.ts";
import { isDigits } from "../text.ts";

const MULT: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * "64m", "1.5 GiB", "100": the number and the unit letter ("" for bytes), or
 * undefined. Read by hand, not by a regular expression: --memory is on the run
 * path (see src/text.ts).
 */
function sizeParts(text: string): [number, string] | undefined {
  let i = 0;
  while (i < text.length && isDigits(text.charAt(i))) i++;
  if (i === 0) return undefined;
  if (text.charAt(i) === ".") {
    let j = i + 1;
    while (j < text.length && isDigits(text.charAt(j))) j++;
    if (j === i + 1) return undefined;
    i = j;
  }
  let rest = text.slice(i).trimStart().toLowerCase();
  let unit = "";
  if (rest !== "" && "kmgtp".includes(rest.charAt(0))) {
    unit = rest.charAt(0);
    rest = rest.slice(1);
  }
  return rest === "" || rest === "b" || rest === "ib" ? [Number(text.slice(0, i)), unit] : undefined;
}

/** Bytes from "64m" (binary multiples, as docker's RAMInBytes); throws naming the flag. */
export function parseSize(text: string, flag: string): number {
  const m = sizeParts(text.trim());
  if (!m) fail(`invalid ${flag} "${text}": use a size like 64m, 512k or 1g (b, k, m, g, t)`);
  const n = Math.floor(m[0] * (MULT[m[1]] as number));
  if (!Number.isSafeInteger(n)) fail(`invalid ${flag} "${text}": too large`);
  return n;
}

/** A size, or -1 for "unlimited" when the text is -1. */
export function parseSizeOrUnlimited(text: string, flag: string): number {
  return text.trim() === "-1" ? -1 : parseSize(text, flag);
}

export function parseCpus(text: string, max: number): number {
  const n = Number(text);
  if (!/^\d*\.?\d+$/.test(text.trim()) || !Number.isFinite(n) || n <= 0) fail(`invalid --cpus "${text}": use a positive number of CPUs, e.g. 0.5 or 2`);
  if (n < 0.01) fail(`invalid --cpus ${text}: the smallest quota is 0.01 CPUs (1 ms in each 100 ms period)`);
  if (n > max) fail(`invalid --cpus ${text}: this machine has ${max} CPU${max === 1 ? "" : "s"} available`);
  return n;
}

export function parsePositiveInt(text: string, flag: string, min: number, max: number): number {
  const t = text.trim();
  if (!isDigits(t.startsWith("-") ? t.slice(1) : t)) fail(`invalid ${flag} "${text}": use a whole number from ${min} to ${max}`);
  const n = Number(text);
  if (n < min || n > max) fail(`invalid ${flag} ${text}: use a number from ${min} to ${max}`);
  return n;
}

/** Above any kernel's NR_CPUS (8192) and MAX_NUMNODES (1024): a list is never expanded past it. */
const LIST_MAX = 8191;

/**
 * "0-2,4" -> [0,1,2,4]; throws on malformed lists. Every number is checked
 * against limit (the host's highest possible CPU or node) before a range is
 * expanded: "0-4294967295" must not become four billion entries.
 */
export function parseCpuList(
  text: string,
  flag: string,
  limit: { max: number; what: string; possible: string } = { max: LIST_MAX, what: "number", possible: `0-${LIST_MAX}` },
): number[] {
  const out = new Set<number>();
  for (const part of text.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) fail(`invalid ${flag} "${text}": use a list like 0-2,4`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    const over = [a, b].find((n) => n > limit.max);
    if (over !== undefined)
      fail(
        `invalid ${flag} "${text}": ${limit.what} ${m[2] !== undefined && b === over ? m[2] : m[1]} does not exist on this machine (possible: ${limit.possible})`,
      );
    if (b < a) fail(`invalid ${flag} "${text}": the range ${part} goes backwards`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return [...out].sort((x, y) => x - y);
}

/** The longest timeout nsbox takes, in seconds: what fits in a signed 32-bit count of milliseconds (about 24 days). */
export const MAX_SECONDS = 2147483;

/** A timeout in whole seconds (stop -t), bounded. */
export function parseSeconds(text: string, flag: string): number {
  if (!/^\d+$/.test(text.trim())) fail(`invalid ${flag} "${text}": use a whole number of seconds, from 0 to ${MAX_SECONDS}`);
  const n = Number(text);
  if (n > MAX_SECONDS) fail(`invalid ${flag} ${text}: use a number of seconds from 0 to ${MAX_SECONDS} (about 24 days)`);
  return n;
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3 && n % 1024 ** 3 === 0) return `${n / 1024 ** 3} GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}
