/**
 * Waiting for a child process without blocking Bun: SIGCHLD plus wait4(WNOHANG).
 * nsbox is a subreaper, so the container's process (and an exec'd one) becomes
 * its child once W exits.
 */
import { waitPid } from "../native/spawn.ts";

export interface ChildExit {
  promise: Promise<number>;
  done: boolean;
  watch(pid: number): void;
  /** the exit was seen (and the child reaped) elsewhere: its wait status */
  settle(status: number): void;
  dispose(): void;
}

/** Install before the spawn, so that an early exit is never missed. */
export function childExit(): ChildExit {
  let resolve!: (status: number) => void;
  let pid = 0;
  // Signal handlers do not keep Bun's event loop alive: this timer does, and
  // doubles as a safety net should a SIGCHLD ever be missed.
  let timer: ReturnType<typeof setInterval> | undefined;
  const state: ChildExit = {
    promise: new Promise<number>((r) => (resolve = r)),
    done: false,
    watch(p: number) {
      pid = p;
      timer = setInterval(check, 1000);
      check();
    },
    settle(status: number) {
      if (state.done) return;
      state.done = true;
      clearInterval(timer);
      resolve(status);
    },
    dispose() {
      process.off("SIGCHLD", check);
      clearInterval(timer);
    },
  };
  function check() {
    if (!pid || state.done) return;
    const r = waitPid(pid, true);
    if (r.pid === pid || r.pid < 0) {
      state.done = true;
      clearInterval(timer);
      resolve(r.pid === pid ? r.status : 255 << 8);
    }
  }
  process.on("SIGCHLD", check);
  return state;
}

export async function killAndReap(pid: number, exited: ChildExit): Promise<void> {
  if (!pid || exited.done) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
  await Promise.race([exited.promise, Bun.sleep(2000)]);
}
