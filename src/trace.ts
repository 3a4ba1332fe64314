/**
 * NSBOX_TRACE=1 prints when each phase of a command happened (milliseconds since
 * the process started) on stderr: the tool for keeping start-up fast.
 */
import { writeSync } from "node:fs";

const on = !!process.env.NSBOX_TRACE;

export function mark(what: string): void {
  if (on) writeSync(2, `[trace] ${performance.now().toFixed(2)} ms  ${what}\n`);
}
