/**
 * NSBOX_TRACE=1 prints when each phase of a command happened (milliseconds since
 * the process started) and the resident memory then, on stderr: the tool for
 * keeping start-up fast and small. The last field is the phase's name.
 */
import { writeSync } from "node:fs";

const on = !!process.env.NSBOX_TRACE;

export function mark(what: string): void {
  if (on) writeSync(2, `[trace] ${performance.now().toFixed(2)} ms  ${(process.memoryUsage.rss() / 1048576).toFixed(1)} MiB  ${what}\n`);
}
