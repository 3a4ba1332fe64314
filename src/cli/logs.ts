/** `nsbox logs [-f] [--tail N] [-t] CONTAINER`: a detached container's output. */

import { viewOf } from "../container/lifecycle.ts";
import { type LogLine, logPath, readAll } from "../container/logs.ts";
import { fail } from "../errors.ts";
import { closeSync, fstatSync, openSync, readSync, statSync, writeSync } from "../native/fs.ts";
import { alive } from "../state/proc.ts";
import { readExitFile } from "../state/store.ts";
import { bool, defineCommand, type FlagsDef, parseFlags, str, toCitty } from "./args.ts";
import { lookup } from "./common.ts";

export const logsFlags = {
  container: { type: "positional", description: "the container (name, id or unique id prefix)", required: true },
  follow: { type: "boolean", alias: "f", description: "keep printing new output until the container exits" },
  tail: { type: "string", alias: "n", description: "only the last N lines (default: all)", valueHint: "N" },
  timestamps: { type: "boolean", alias: "t", description: "prefix each line with its time (RFC 3339, nanoseconds)" },
} satisfies FlagsDef;

export const logsCommand = defineCommand({ meta: { name: "logs", description: "Print the logs of a detached container" }, args: () => toCitty(logsFlags) });

function openLog(path: string): number | undefined {
  try {
    return openSync(path, "r");
  } catch {
    return undefined;
  }
}

function inodeOf(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Everything from offset to the end of the open file. */
function readFd(fd: number, offset: number): { text: string; end: number } {
  const size = fstatSync(fd).size;
  if (size <= offset) return { text: "", end: offset };
  const buf = Buffer.allocUnsafe(size - offset);
  const n = readSync(fd, buf, 0, buf.length, offset);
  return { text: buf.subarray(0, n).toString("utf8"), end: offset + n };
}

export async function logs(argv: string[]): Promise<number> {
  const p = parseFlags("logs", argv, logsFlags);
  const ref = p.positionals[0] as string;
  const tailText = str(p.flags.tail) ?? "all";
  if (tailText !== "all" && !/^\d+$/.test(tailText)) fail(`invalid --tail "${tailText}": use a number of lines, or all`);
  if (tailText !== "all" && !Number.isSafeInteger(Number(tailText))) fail(`invalid --tail ${tailText}: too large (use all for every line)`);
  const v = await lookup(ref);
  if (!v.config.detached) fail(`container ${ref} runs in the foreground: its output went to the terminal of its "nsbox run", not to a log`);
  const ts = bool(p.flags.timestamps);
  const emit = (l: LogLine) => writeSync(l.stream === "stderr" ? 2 : 1, `${ts ? `${l.time} ` : ""}${l.text}\n`);
  const all = readAll(v.id);
  const lines = tailText === "all" ? all.lines : all.lines.slice(Math.max(0, all.lines.length - Number(tailText)));
  for (const l of lines) emit(l);
  if (!bool(p.flags.follow)) {
    if (tailText === "all" || Number(tailText) > 0) for (const l of all.parser.flush()) emit(l);
    return 0;
  }
  // Follow: read what the monitor appends to the file we have open; when the
  // path names another file (a rotation), finish the old one, then switch.
  let { offset, parser } = all;
  let fd = openLog(logPath(v.id));
  try {
    for (;;) {
      // The monitor writes the exit file after the last log line: once it is
      // there (or the monitor is gone) before a read, that read got everything.
      const now = viewOf(v.id);
      const complete = !now || (now.status === "exited" && (readExitFile(v.id) !== undefined || !alive(now.state.monitor)));
      let got = "";
      if (fd !== undefined) {
        const r = readFd(fd, offset);
        offset = r.end;
        got = r.text;
        for (const l of parser.push(got)) emit(l);
        const cur = inodeOf(logPath(v.id));
        if (cur !== undefined && cur !== fstatSync(fd).ino) {
          const rest = readFd(fd, offset).text; // the tail of the rotated file
          for (const l of parser.push(rest)) emit(l);
          closeSync(fd);
          fd = openLog(logPath(v.id));
          offset = 0;
          continue;
        }
      } else fd = openLog(logPath(v.id));
      if (complete && got === "") break;
      await Bun.sleep(100);
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  for (const l of parser.flush()) emit(l);
  return 0;
}
