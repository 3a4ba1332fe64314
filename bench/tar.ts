/**
 * extractTar against GNU tar: bun bench/tar.ts [--runs N] [--dir DIR] TARBALL...
 *
 * Each tarball is extracted N times (default 5) by `tar -xpf` and by extractTar,
 * alternately and each time into a fresh directory under DIR (default the system
 * temporary directory; /dev/shm takes the disk out of the measure). The table
 * shows medians. GNU tar is timed as a whole process (~2 ms of start-up);
 * extractTar as a call inside this already started process, which is how nsbox
 * uses it. Run it as root, as nsbox does: GNU tar then restores owners and
 * device nodes too.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { extractTar } from "../src/rootfs/tar.ts";

const USAGE = `usage: bun bench/tar.ts [--runs N] [--dir DIR] TARBALL...

A real rootfs makes the useful test. As root, build a Debian minbase (~170 MB):
  mmdebstrap --variant=minbase bookworm /tmp/minbase.tar
  (or: debootstrap --variant=minbase bookworm /tmp/minbase && tar -C /tmp/minbase -cf /tmp/minbase.tar .)
  gzip -k /tmp/minbase.tar
  zstd -19 -T0 /tmp/minbase.tar -o /tmp/minbase.tar.zst
then:
  bun bench/tar.ts /tmp/minbase.tar /tmp/minbase.tar.gz /tmp/minbase.tar.zst
  bun bench/tar.ts --dir /dev/shm /tmp/minbase.tar /tmp/minbase.tar.gz /tmp/minbase.tar.zst`;

interface Options {
  runs: number;
  dir: string;
  tarballs: string[];
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { runs: 5, dir: tmpdir(), tarballs: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--runs") opts.runs = Number(argv[++i]);
    else if (arg === "--dir") opts.dir = argv[++i] ?? opts.dir;
    else if (arg === "-h" || arg === "--help") opts.tarballs = [];
    else opts.tarballs.push(arg);
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new Error("--runs wants a positive integer");
  return opts;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Writeback of the previous run would otherwise slow the next one down. */
function settle(): void {
  Bun.spawnSync(["sync"]);
}

async function timeOurs(tarball: string, dir: string): Promise<number> {
  const dest = mkdtempSync(join(dir, "bench-ours-"));
  try {
    const t0 = performance.now();
    await extractTar(tarball, dest);
    return performance.now() - t0;
  } finally {
    rmSync(dest, { recursive: true, force: true });
    settle();
  }
}

function timeGnu(tarball: string, dir: string): number {
  const dest = mkdtempSync(join(dir, "bench-gnu-"));
  try {
    const t0 = performance.now();
    const r = Bun.spawnSync(["tar", "-xpf", tarball, "-C", dest], { stderr: "pipe" });
    const ms = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`tar -xpf ${tarball} failed: ${r.stderr.toString().trim()}`);
    return ms;
  } finally {
    rmSync(dest, { recursive: true, force: true });
    settle();
  }
}

function peakRssMiB(): number {
  const status = readFileSync("/proc/self/status", "utf8");
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

async function benchOne(tarball: string, opts: Options): Promise<string[]> {
  const gnu: number[] = [];
  const ours: number[] = [];
  // A warm-up of each fills the page cache and JIT, then alternate so that
  // whatever else the machine does falls on both.
  timeGnu(tarball, opts.dir);
  await timeOurs(tarball, opts.dir);
  for (let i = 0; i < opts.runs; i++) {
    if (i % 2 === 0) {
      gnu.push(timeGnu(tarball, opts.dir));
      ours.push(await timeOurs(tarball, opts.dir));
    } else {
      ours.push(await timeOurs(tarball, opts.dir));
      gnu.push(timeGnu(tarball, opts.dir));
    }
  }
  const g = median(gnu);
  const o = median(ours);
  const mb = statSync(tarball).size / 1e6;
  return [basename(tarball), `${mb.toFixed(0)} MB`, `${g.toFixed(0)} ms`, `${o.toFixed(0)} ms`, `${(o / g).toFixed(2)}x`];
}

function printTable(rows: string[][]): void {
  const widths = (rows[0] as string[]).map((_, c) => Math.max(...rows.map((r) => (r[c] as string).length)));
  for (const [i, row] of rows.entries()) {
    console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.tarballs.length === 0) {
    console.log(USAGE);
    return;
  }
  const rows = [["tarball", "size", "GNU tar -xpf", "extractTar", "ratio"]];
  for (const tarball of opts.tarballs) rows.push(await benchOne(tarball, opts));
  console.log(`medians of ${opts.runs} runs, extracting under ${opts.dir}`);
  printTable(rows);
  console.log(`peak RSS of this process: ${peakRssMiB().toFixed(0)} MiB`);
}

await main();
