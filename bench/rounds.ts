/**
 * Wall time of a few commands compared in rounds: each round runs every command
 * once, in a shuffled order (seeded: the same order at every call), then prints
 * each one's median and its median per-round difference from the first command.
 *
 *   bun bench/rounds.ts [-n ROUNDS] CMD1 CMD2 ...     (each CMD one shell word: a script)
 *
 * Give an identical copy of one binary as one of the commands: its difference
 * is the noise floor of that run. Two different files with the same bytes
 * differed by up to 2.7 ms in alternated pairs on a busy host (bench/trace-notes.md,
 * "Ninth stop"), which is why this tool exists beside `make bench`.
 */
import { median, random } from "./lib.ts";

const args = process.argv.slice(2);
let rounds = 61;
if (args[0] === "-n") {
  rounds = Number(args[1]);
  args.splice(0, 2);
}
if (!Number.isInteger(rounds) || rounds < 4 || args.length < 2) {
  console.error("usage: bun bench/rounds.ts [-n ROUNDS (at least 4)] CMD1 CMD2 ...");
  process.exit(2);
}

function runMs(cmd: string): number {
  const t = performance.now();
  const r = Bun.spawnSync([cmd], { stdout: "ignore", stderr: "ignore" });
  const ms = performance.now() - t;
  if (r.exitCode !== 0) {
    console.error(`${cmd} failed (exit ${r.exitCode})`);
    process.exit(1);
  }
  return ms;
}

const rnd = random(14);

for (const c of args) runMs(c); // one warm-up each
const times = new Map(args.map((c) => [c, [] as number[]]));
for (let k = 0; k < rounds; k++) {
  const order = args.slice();
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j] as string, order[i] as string];
  }
  for (const c of order) times.get(c)?.push(runMs(c));
}
const quartile = (xs: number[], q: number) => xs.slice().sort((a, b) => a - b)[Math.floor((xs.length - 1) * q)] as number;
const first = times.get(args[0] as string) as number[];
for (const c of args) {
  const xs = times.get(c) as number[];
  const d = xs.map((x, i) => x - (first[i] as number));
  const diff =
    c === args[0]
      ? ""
      : `  vs the first ${median(d) >= 0 ? "+" : ""}${median(d).toFixed(2)} ms (IQR ${quartile(d, 0.25).toFixed(2)}..${quartile(d, 0.75).toFixed(2)})`;
  console.log(`${c}: median ${median(xs).toFixed(2)} ms${diff}`);
}
