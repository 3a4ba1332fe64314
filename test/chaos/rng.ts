/**
 * The chaos suite's randomness: one seed for a whole run, printed at the start,
 * and a small deterministic generator (sfc32) forked per purpose, so that a
 * failure replays with NSBOX_CHAOS_SEED=N whatever order the parts run in and
 * however the concurrent workers interleave (each worker has its own stream).
 */

/** cyrb53-style 32-bit hash of a string: the key of a forked stream. */
function hash32(text: string, salt: number): number {
  let h1 = 0xdeadbeef ^ salt;
  let h2 = 0x41c6ce57 ^ salt;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  return h1 >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(
    readonly seed: number,
    readonly label = "",
  ) {
    this.a = hash32(label, seed);
    this.b = hash32(`${label}/b`, seed);
    this.c = hash32(`${label}/c`, seed);
    this.d = 1;
    // the first outputs of sfc32 still look like the key: skip them
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [lo, hi] (both included). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** Picks by weight: [[weight, value], ...]. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    const total = items.reduce((s, [w]) => s + w, 0);
    let x = this.next() * total;
    for (const [w, v] of items) {
      if (x < w) return v;
      x -= w;
    }
    return (items[items.length - 1] as readonly [number, T])[1];
  }

  /** n distinct items (or all of them), in random order. */
  sample<T>(items: readonly T[], n: number): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
    }
    return copy.slice(0, n);
  }

  /** A string of letters and digits. */
  word(min = 1, max = 12): string {
    const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let s = "";
    for (let i = this.int(min, max); i > 0; i--) s += chars[this.int(0, chars.length - 1)];
    return s;
  }

  /** An independent stream for one purpose (a worker, a round, a case): same seed, same stream. */
  fork(label: string): Rng {
    return new Rng(this.seed, `${this.label}/${label}`);
  }
}

let announced = false;

/**
 * The run's seed: NSBOX_CHAOS_SEED when set (a replay), else one derived from
 * the time (the Makefile sets it once for all three files). Printed once per
 * process, with the command that replays it.
 */
export function chaosSeed(): number {
  const env = process.env.NSBOX_CHAOS_SEED;
  let seed: number;
  if (env !== undefined && env !== "") {
    if (!/^\d+$/.test(env) || Number(env) > 0xffffffff) throw new Error(`NSBOX_CHAOS_SEED must be a whole number below 2^32, got "${env}"`);
    seed = Number(env);
  } else {
    seed = (Date.now() ^ (process.pid << 16)) >>> 0;
    process.env.NSBOX_CHAOS_SEED = String(seed);
  }
  if (!announced) {
    announced = true;
    console.log(`chaos seed ${seed} (replay: NSBOX_CHAOS_SEED=${seed} make test-chaos)`);
  }
  return seed;
}

/** The stream of one part of the suite (churn, kill, fuzz). */
export function chaosRng(part: string): Rng {
  return new Rng(chaosSeed(), part);
}
