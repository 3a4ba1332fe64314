/**
 * NSBOX_TRACE=1 prints when each phase of a command happened (milliseconds since
 * the process started) and the resident memory then, on stderr: the tool for
 * keeping start-up fast and small. The last field is the phase's name.
 *
 * NSBOX_TRACE_STOP=POINT makes nsbox stop itself (SIGSTOP) when it reaches the
 * mark named POINT: the chaos tests SIGKILL it there, so that an interruption at
 * that very step (e.g. between the spawn of a monitor and the state that names
 * it) is reproduced every time instead of once in a hundred random kills.
 */
import { writeSync } from "./native/fs.ts";

const on = !!process.env.NSBOX_TRACE;
const stopAt = process.env.NSBOX_TRACE_STOP;

let originShown = false;

export function mark(what: string): void {
  if (on && !originShown) {
    // where the clock starts (epoch ms), so that a caller that timed the spawn sees Bun's start before it
    originShown = true;
    writeSync(2, `[trace-origin] ${performance.timeOrigin.toFixed(3)}\n`);
  }
  if (on) writeSync(2, `[trace] ${performance.now().toFixed(2)} ms  ${(process.memoryUsage.rss() / 1048576).toFixed(1)} MiB  ${what}\n`);
  if (stopAt === what) process.kill(process.pid, "SIGSTOP");
}
