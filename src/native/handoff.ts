/**
 * Replacing this Bun process with the shim (execve), for a foreground run that
 * only waits from now on (see runForeground and csrc/shim_fg.c). Through the
 * helper (raw system calls: csrc/host_calls.c, csrc/fg_forward.c).
 *
 * No signal sent to nsbox may be lost on the way. Bun's handlers queue a signal
 * for JavaScript (on whichever thread the kernel chose), and execve would drop
 * what is queued. So, in this order:
 *   1. forwardSignals, before the container starts: C handlers (csrc/fg_forward.c)
 *      forward them, in the handler, whatever the thread (a signal Bun's own handler
 *      had taken could still be on its way to JavaScript when execve ends it);
 *   2. drainSignals: what Bun queued before 1 reaches its JS listener (which forwards);
 *   3. blockSignals: the JS thread, which calls execve, blocks them;
 *   4. handingOff(): the C handlers (which other threads still run) stop
 *      forwarding and send each signal on to the JS thread instead, where it
 *      stays pending; a pending signal survives execve: the shim reads it from
 *      its signalfd (and applies the -t rule to a SIGHUP, which a forward from
 *      here after the shim's argv was written would have missed). Then every
 *      other thread blocks them too (csrc/fg_forward.c, fwd_quiet), and only
 *      once none has a handler under way: execve ends the other threads, and
 *      one given a signal whose handler had not run yet would lose it;
 *   5. execFd (and if it fails: waitInBun, then unblock).
 */
import { call, F } from "./helper.ts";
import { addr, sys } from "./syscall.ts";

const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;

const bits = (signals: number[]) => {
  let m = 0n;
  for (const s of signals) m |= 1n << BigInt(s - 1);
  return m;
};

export interface Forwarding {
  /** where the signals go from now on; those that came before go now */
  target(pid: number): void;
  /**
   * The calling (JS) thread has blocked the signals and execs the shim next: from
   * now on they are left pending for the shim, not forwarded, and Bun's other
   * threads block them. Returns whether a SIGHUP came before, or undefined when
   * a thread would not block them (then no handoff: call waitInBun).
   */
  handingOff(): boolean | undefined;
  /**
   * No handoff (none tried, or it failed): Bun's listeners take the signals again,
   * as in a run that never hands off (they apply the -t rule, the C handlers do
   * not). Before the JS thread unblocks them. Returns whether a SIGHUP came.
   */
  waitInBun(): boolean;
  /** the container is gone: forward nothing more (its pid may be reused) */
  stop(): void;
}

/**
 * From now on these signals (numbers) sent to nsbox are taken by C handlers
 * (csrc/fg_forward.c), not by Bun's JS listeners: noted until target() names
 * the container, then sent to it at once. Undefined if that cannot be done.
 */
export function forwardSignals(signals: number[]): Forwarding | undefined {
  if (call(F.FWD_INSTALL, Number(bits(signals))) !== 0) return undefined;
  return {
    target: (pid) => void call(F.FWD_TARGET, pid),
    handingOff: () => {
      const r = call(F.FWD_HANDOFF, 1);
      return r < 0 ? undefined : r !== 0;
    },
    waitInBun: () => call(F.FWD_HANDOFF, 0) !== 0,
    stop: () => void call(F.FWD_TARGET, -1),
  };
}

/** Blocks (or unblocks) signals in the calling (JS) thread. */
export function blockSignals(signals: number[], block = true): void {
  call(F.SIGMASK, block ? SIG_BLOCK : SIG_UNBLOCK, Number(bits(signals)));
}

/** A few turns of the event loop, through its poll: what Bun's signal handlers queued runs now. */
export async function drainSignals(): Promise<void> {
  for (let i = 0; i < 3; i++) await Bun.sleep(1);
}

/** A copy of fd that survives execve (Bun's fds are close-on-exec). */
export function inheritableDup(fd: number): number {
  return sys("dup", fd);
}

/** Replaces this process with the program in fd; returns only if that failed. */
export function execFd(fd: number, argv: string[], env: string[]): void {
  const keep: Buffer[] = [];
  const vector = (items: string[]) => {
    const v = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      const b = Buffer.from(`${s}\0`);
      keep.push(b);
      v[i] = BigInt(addr(b));
    });
    return v;
  };
  call(F.EXECVEAT, fd, vector(argv), vector(env));
  keep.length = 0;
}
