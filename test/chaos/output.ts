/**
 * Containers of the chaos suite print a known sequence: a linear congruential
 * generator computed by the container's sh from a seed, one line per step on
 * stdout, every fifth value also on stderr, then END. The same sequence is
 * computed here, so `nsbox logs` can be compared byte for byte.
 */

export interface Script {
  /** the command line of the container */
  argv: string[];
  stdout: string[];
  stderr: string[];
}

const STEP = `x=$(( (x * 1103515245 + 12345) % 2147483648 ))`;

function sequence(seed: number, lines: number, filler: string): { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  let x = BigInt(seed);
  for (let i = 0; i < lines; i++) {
    x = (x * 1103515245n + 12345n) % 2147483648n;
    stdout.push(`o${i} ${x} ${filler}`);
    if (x % 5n === 0n) stderr.push(`e${i} ${x}`);
  }
  stdout.push("END");
  return { stdout, stderr };
}

/**
 * A container that prints its sequence and then waits (for stop, whose SIGTERM
 * its trap answers with "TERM" and exit 143), or, with exitCode, exits at once.
 * The tag ends the command line so that the container's sh can be found on the host.
 */
export function sequenceScript(seed: number, lines: number, filler: string, tag: string, exitCode?: number): Script {
  const body = [
    "trap 'echo TERM; exit 143' TERM",
    `x=${seed}; i=0`,
    `while [ $i -lt ${lines} ]; do ${STEP}; echo "o$i $x $1"; if [ $((x % 5)) -eq 0 ]; then echo "e$i $x" >&2; fi; i=$((i + 1)); done`,
    "echo END",
    exitCode === undefined ? "sleep 600 & wait" : `exit ${exitCode}`,
  ].join("\n");
  return { argv: ["sh", "-c", body, tag, filler], ...sequence(seed, lines, filler) };
}

/** Lines of a text (without the empty one after the last newline). */
export function textLines(text: string): string[] {
  if (text === "") return [];
  const l = text.split("\n");
  if (l[l.length - 1] === "") l.pop();
  return l;
}

/** First difference of two line lists, for a failure message. */
export function firstDiff(got: string[], want: string[]): string {
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] !== want[i])
      return `line ${i}: got ${JSON.stringify(got[i])}, expected ${JSON.stringify(want[i])} (${got.length} lines, expected ${want.length})`;
  }
  return "equal";
}

/** IPv4 addresses (other than loopback) of the network namespace of pid, from /proc/PID/net/fib_trie. */
export function localAddresses(fibTrie: string): string[] {
  const out = new Set<string>();
  const lines = fibTrie.split("\n");
  for (let i = 0; i + 1 < lines.length; i++) {
    const m = /^\s+\|-- (\d+\.\d+\.\d+\.\d+)$/.exec(lines[i] as string);
    if (m && /\/32 host LOCAL/.test(lines[i + 1] as string) && !(m[1] as string).startsWith("127.")) out.add(m[1] as string);
  }
  return [...out].sort();
}
