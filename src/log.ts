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
  return `nsbox: ${tag}${escapeControls(text)}\n`;
}

/**
 * The one place where nsbox's messages reach the terminal: control characters
 * (C0, DEL, C1: newlines, ESC sequences) that a user's input carried into a
 * message are shown escaped, as \n or \x1b, so a message is always one line and
 * can never move the cursor, recolour or retitle the terminal.
 */
export function escapeControls(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => {
    const named: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
    return named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}

export const log = createConsola({
  level: process.env.NSBOX_DEBUG ? 4 : 3,
  reporters: [{ log: (obj) => writeSync(2, line(obj)) }],
});
