/**
 * Logging through consola's core (the full consola costs ~15 ms of start-up in a
 * compiled binary; the core ~0.1 ms) with a reporter that prints one plain line:
 *   nsbox: error text          (errors and warnings, on stderr)
 *   nsbox: note                (info, on stderr: stdout belongs to the container)
 * The consola instance is made, and its module loaded, at the first message:
 * making it costs ~0.25 ms, loading it 5.5 kB of code, and a start that goes
 * well (nsbox run, exec) prints nothing.
 */

import type { ConsolaInstance, LogObject } from "consola/core";
import { writeSync } from "./native/fs.ts";

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

let instance: ConsolaInstance | undefined;
let level = process.env.NSBOX_DEBUG ? 4 : 3;

function consola(): ConsolaInstance {
  if (!instance) {
    // its ESM build by path: so required, it is a chunk of its own (consola/core is the CJS build, which would be bundled in)
    const { createConsola } = require("../node_modules/consola/dist/core.mjs") as typeof import("consola/core");
    instance = createConsola({ level, reporters: [{ log: (obj) => writeSync(2, line(obj)) }] });
  }
  return instance;
}

type Reporter = { log: (obj: LogObject) => void };

/** consola's methods that nsbox uses, each making the instance when first called. */
export const log = {
  get level(): number {
    return instance?.level ?? level;
  },
  /** 4 shows debug messages (--debug) */
  set level(v: number) {
    level = v;
    if (instance) instance.level = v;
  },
  error: (message: unknown, ...args: unknown[]) => consola().error(message, ...args),
  warn: (message: unknown, ...args: unknown[]) => consola().warn(message, ...args),
  info: (message: unknown, ...args: unknown[]) => consola().info(message, ...args),
  success: (message: unknown, ...args: unknown[]) => consola().success(message, ...args),
  debug: (message: unknown, ...args: unknown[]) => {
    // no instance for a message nobody will see
    if (level >= 4) consola().debug(message, ...args);
  },
  addReporter: (reporter: Reporter) => consola().addReporter(reporter),
};
