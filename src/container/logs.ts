/**
 * Reading a detached container's logs. The monitor (csrc/shim.c) writes the CRI
 * log format, one line per chunk of output:
 *   2026-11-23T08:00:00.123456789Z stdout F a full line
 *   2026-11-23T08:00:00.123456789Z stderr P part of a line (continues in the next P/F)
 * to ctr.log, rotated to ctr.log.1 when it reaches the size cap.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from "../native/fs.ts";
import { join } from "../posixpath.ts";
import { containerDir } from "../state/store.ts";

export interface LogLine {
  time: string;
  stream: "stdout" | "stderr";
  text: string;
}

/** Parses CRI lines, joining partial ("P") chunks to the line they continue. */
export class LogParser {
  private pending: Record<string, { time: string; text: string } | undefined> = {};
  private carry = "";

  push(chunk: string): LogLine[] {
    const out: LogLine[] = [];
    const text = this.carry + chunk;
    const lines = text.split("\n");
    this.carry = lines.pop() ?? "";
    for (const line of lines) {
      const a = line.indexOf(" ");
      const b = line.indexOf(" ", a + 1);
      const c = line.indexOf(" ", b + 1);
      if (a < 0 || b < 0 || c < 0) continue;
      const time = line.slice(0, a);
      const stream = line.slice(a + 1, b) as "stdout" | "stderr";
      const tag = line.slice(b + 1, c);
      const body = line.slice(c + 1);
      const prev = this.pending[stream];
      if (tag === "P") this.pending[stream] = { time: prev?.time ?? time, text: (prev?.text ?? "") + body };
      else {
        out.push({ time: prev?.time ?? time, stream, text: (prev?.text ?? "") + body });
        this.pending[stream] = undefined;
      }
    }
    return out;
  }

  /** What is still partial when the log ends (a last line without newline). */
  flush(): LogLine[] {
    const out: LogLine[] = [];
    for (const stream of ["stdout", "stderr"] as const) {
      const p = this.pending[stream];
      if (p) out.push({ time: p.time, stream, text: p.text });
      this.pending[stream] = undefined;
    }
    return out;
  }
}

export const logPath = (id: string) => join(containerDir(id), "ctr.log");

/** Reads a file from offset to its end. */
export function readFrom(path: string, offset: number): { text: string; end: number } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return { text: "", end: offset };
  }
  try {
    const size = statSync(path).size;
    if (size <= offset) return { text: "", end: size < offset ? 0 : offset };
    const buf = Buffer.allocUnsafe(size - offset);
    const n = readSync(fd, buf, 0, buf.length, offset);
    return { text: buf.subarray(0, n).toString("utf8"), end: offset + n };
  } finally {
    closeSync(fd);
  }
}

/** Every line kept so far: the rotated file, then the current one. */
export function readAll(id: string): { lines: LogLine[]; parser: LogParser; offset: number; ino: number } {
  const parser = new LogParser();
  const lines: LogLine[] = [];
  const old = `${logPath(id)}.1`;
  if (existsSync(old)) lines.push(...parser.push(readFrom(old, 0).text));
  const cur = readFrom(logPath(id), 0);
  lines.push(...parser.push(cur.text));
  let ino = 0;
  try {
    ino = statSync(logPath(id)).ino;
  } catch {
    // no log yet
  }
  return { lines, parser, offset: cur.end, ino };
}
