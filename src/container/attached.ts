/**
 * A process nsbox waits for in the foreground (`run` without -d, `exec`, the
 * OCI `run`): its terminal relayed, signals forwarded, its exit awaited.
 *
 * Its own module, apart from runForeground (src/container/foreground.ts):
 * `exec` needs this and none of what creates a container, and each module a
 * command imports is loaded at its start.
 */
import { enterRaw, hostWinsize, type Relay, relayPty, restoreTerminal } from "../tty/relay.ts";
import { type ChildExit, childExit, killAndReap } from "./exitwatch.ts";

/** Signals that nsbox passes on to the container (docker's --sig-proxy). */
const FORWARDED_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

/**
 * A process nsbox waits for in the foreground: its terminal relayed (when it has
 * one), signals forwarded, everything undone in dispose() whatever happened.
 */
export class Foreground {
  readonly exited: ChildExit = childExit();
  private relay: Relay | undefined;
  private pid = 0;
  private tty = false;
  /** signals that came before the process existed, passed on once it does */
  private pending: NodeJS.Signals[] = [];
  /** a SIGHUP came (the shim applies the -t rule to it, should nsbox hand off before the rule ran) */
  hupSeen = false;
  private forward = (sig: NodeJS.Signals) => {
    if (sig === "SIGHUP") this.hupSeen = true;
    if (!this.pid) {
      this.pending.push(sig);
      return;
    }
    try {
      process.kill(this.pid, sig);
    } catch {
      // already gone
    }
    if (sig === "SIGHUP") this.hupRule();
  };

  /**
   * With -t, a SIGHUP usually means our terminal is gone: a PID 1 without a
   * handler would ignore it and live on, unseen. Give it a moment, then kill it.
   */
  private hupRule(): void {
    if (this.tty && !hostWinsize()) setTimeout(() => this.kill(), 1000).unref();
  }

  /** Signals are forwarded from now on (those before track() are kept for then). */
  constructor() {
    for (const sig of FORWARDED_SIGNALS) process.on(sig, this.forward);
  }

  /**
   * From now on this process is killed if nsbox gives up on it, and, with watch,
   * waited for (without: the caller waits, then settles or watches this.exited).
   */
  track(pid: number, watch = true): void {
    this.pid = pid;
    if (watch) this.exited.watch(pid);
    for (const sig of this.pending.splice(0)) this.forward(sig);
  }

  /** Resolves once the process exited or ms passed, whichever comes first. */
  async exitWithin(ms: number): Promise<void> {
    // (not Promise.race: a start's first call of it compiles it, see src/list.ts)
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.exited.promise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  attach(master: number | undefined, interactive: boolean): void {
    if (master !== undefined) {
      this.tty = true;
      if (interactive) enterRaw();
      this.relay = relayPty(master, interactive, () => this.kill());
      if (this.hupSeen) this.hupRule(); // it came before there was a terminal to speak of
    }
  }

  private kill(): void {
    try {
      if (this.pid && !this.exited.done) process.kill(this.pid, "SIGKILL");
    } catch {
      // gone
    }
  }

  /** The wait status, once the process exited and its terminal output is copied. */
  async wait(): Promise<number> {
    const status = await this.exited.promise;
    if (this.relay) await Promise.race([this.relay.done, Bun.sleep(1000)]);
    return status;
  }

  async dispose(): Promise<void> {
    for (const sig of FORWARDED_SIGNALS) process.off(sig, this.forward);
    restoreTerminal();
    this.relay?.stop();
    if (this.pid && !this.exited.done) await killAndReap(this.pid, this.exited);
    this.exited.dispose();
  }
}
