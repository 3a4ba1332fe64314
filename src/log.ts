/**
 * Logging through consola's core (the full consola costs ~15 ms of start-up in a
 * compiled binary; the core ~0.1 ms) with a reporter that prints one plain line:
 *   nsbox: error text          (errors and warnings, on stderr)
 *   nsbox: note                (info, on stderr: stdout belongs to the container)
 */
import { writeSync } from "node:fs";
import { createConsola, type LogObject } from "consola/core";

function line(obj: LogObject): string {
  const text = obj.args.map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a : Bun.inspect(a))).join(" ");
  const tag = obj.type === "warn" ? "warning: " : obj.type === "debug" || obj.type === "trace" ? "debug: " : "";
  return `nsbox: ${tag}${text}\n`;
}

export const log = createConsola({
  level: process.env.NSBOX_DEBUG ? 4 : 3,
  reporters: [{ log: (obj) => writeSync(2, line(obj)) }],
});
