/**
 * `nsbox run` without -d (and `nsbox exec`): nsbox stays the parent of the
 * process, relays its terminal, forwards signals, waits, and exits with its
 * status; run then reports an OOM kill and removes the container.
 *
 * A foreground run that lasts (every one with -t) does not wait in Bun: the
 * process becomes the shim's nsbox-fg role (csrc/shim_fg.c), which does all of
 * that in a few kB and runs `nsbox cleanup --quick` before it exits with the
 * code, so that the container is gone when the shell gets its prompt back.
 */

import type { ContainerSpec } from "../config/spec.ts";
import { formatBytes } from "../config/units.ts";
import { log } from "../log.ts";
import { blockSignals, drainSignals, execFd, type Forwarding, forwardSignals, inheritableDup } from "../native/handoff.ts";
import { shimFd } from "../native/shim.ts";
import { closeFd, exitCodeOf, waitExitSync } from "../native/spawn.ts";
import { join } from "../posixpath.ts";
import { type ContainerConfig, containerDir, type ExitFile, withLockAfterExit, writeExitFile } from "../state/store.ts";
import { mark } from "../trace.ts";
import { Foreground } from "./attached.ts";
import { cleanupCommand, type Started, startContainer } from "./create.ts";
import { finalize } from "./lifecycle.ts";

export interface ForegroundOptions {
  id: string;
  name?: string;
  rootfsArg: string;
}

/**
 * How long Bun waits itself before it hands a container without a terminal to
 * the shim. The shim's cleanup is a second start of nsbox (~20 ms of CPU): a
 * short command (a build step, `run --rm ... true`) is cheaper to wait for and
 * clean up here; anything that runs longer holds the shim's few kB instead. With
 * -t the relay is the shim's from the start (Bun's own relay reads on worker
 * threads, and what they hold when execve ends them would be lost).
 * NSBOX_FG_HANDOFF_MS overrides it (tests, measurements: 0 hands off at once,
 * "never" leaves the wait to Bun, with -t too, as when the handoff fails).
 */
const HANDOFF_AFTER_MS = 200;

/** Numbers of the signals Foreground forwards (FORWARDED_SIGNALS in attached.ts), and all the signals the shim takes over (csrc/shim_fg.c). */
const FORWARDED_NUMBERS = [15, 2, 1, 3, 10, 12];
const HANDED_OFF = [...FORWARDED_NUMBERS, 17 /* SIGCHLD */, 28 /* SIGWINCH */];

/**
 * Once the container runs, this Bun process (~40 MB) becomes the shim's
 * nsbox-fg role (a few kB) by execve: the same pid, so the container stays its
 * child and the shell waits for it as before. Returns only when that could not
 * be done (the container already exited, a thread of Bun would not block the
 * forwarded signals, or execve failed): then Bun waits.
 */
async function handOff(fg: Foreground, s: Started, spec: ContainerSpec, id: string, forwarding: Forwarding | undefined): Promise<void> {
  // no signal lost on the way: see the steps in src/native/handoff.ts
  if (!forwarding) return; // Bun's listeners forward: it waits itself
  await drainSignals();
  blockSignals(HANDED_OFF);
  // From here the C handlers leave the signals pending for the shim: a SIGHUP is
  // either in its argv ("h") or read from its signalfd, and so gets the -t rule.
  const hupSeen = forwarding.handingOff();
  const hup = hupSeen || fg.hupSeen;
  if (hupSeen !== undefined && !fg.exited.done) {
    const master = s.master === undefined ? -1 : inheritableDup(s.master);
    const limit = s.config.cgroup?.memoryLimit;
    const argv = [
      "nsbox-fg",
      String(s.pid),
      String(master),
      `${spec.nsbox.interactive ? "i" : "-"}${hup ? "h" : ""}`,
      join(containerDir(id), "exit"),
      s.cgroup?.oomFile() ?? "",
      limit === undefined ? "" : ` (limit ${formatBytes(limit)})`,
      "--",
      ...cleanupCommand(id, true),
    ];
    mark("handing off to the shim");
    // the cleanup it runs must find the same state (NSBOX_*, PATH): all of ours
    execFd(
      shimFd(),
      argv,
      Object.entries(process.env).map(([k, v]) => `${k}=${v}`),
    );
    if (master >= 0) closeFd(master);
    log.debug("cannot hand the foreground wait to the shim: Bun waits");
  }
  waitInBun(fg, forwarding);
}

/** No handoff: Bun's listeners forward from now on (what was left pending for the shim too, at the unblock). */
function waitInBun(fg: Foreground, forwarding: Forwarding): void {
  if (forwarding.waitInBun()) fg.hupSeen = true;
  blockSignals(HANDED_OFF, false);
}

export async function runForeground(spec: ContainerSpec, opts: ForegroundOptions): Promise<number> {
  const fg = new Foreground();
  // From here on the C handlers take the forwarded signals (Bun's listeners only
  // see those that came before): none can be lost when nsbox execs the shim.
  const forwarding = forwardSignals(FORWARDED_NUMBERS);
  let config: ContainerConfig | undefined;
  let exit: ExitFile | undefined;
  try {
    const s = await startContainer(spec, { ...opts, detached: false, autoRemove: true });
    config = s.config;
    const after = process.env.NSBOX_FG_HANDOFF_MS ?? HANDOFF_AFTER_MS;
    // Without a terminal, and with the C handlers forwarding the signals, the
    // short wait is a blocking one (waitExitSync): a command that ends within it
    // costs no event loop turn and no timer; Bun's listeners keep what came
    // before the handlers, and pass it on in track().
    const waitHere = s.master === undefined && forwarding !== undefined && after !== "never";
    fg.track(s.pid, !waitHere);
    forwarding?.target(s.pid);
    if (waitHere) {
      const status = waitExitSync(s.pid, Number(after));
      if (status !== undefined) fg.exited.settle(status);
      else fg.exited.watch(s.pid);
    }
    if (after === "never") {
      if (forwarding) waitInBun(fg, forwarding);
    } else {
      if (s.master === undefined && !waitHere) await fg.exitWithin(Number(after));
      if (!fg.exited.done) await handOff(fg, s, spec, opts.id, forwarding);
    }
    fg.attach(s.master, spec.nsbox.interactive);
    const status = await fg.wait();
    mark("container exited");
    exit = { waitStatus: status, finishedAt: new Date().toISOString() };
    if (s.cgroup && s.cgroup.oomKills() > 0) {
      const limit = s.config.cgroup?.memoryLimit;
      const text = limit === undefined ? "" : ` (limit ${formatBytes(limit)})`;
      log.error((status & 0x7f) === 9 ? `container killed: out of memory${text}` : `a process in the container was killed: out of memory${text}`);
    }
    return exitCodeOf(status);
  } finally {
    forwarding?.stop(); // the container is reaped (or was never made): its pid may be reused
    await fg.dispose();
    // The exit file is for a `nsbox wait` alone (a foreground container is removed
    // at once, and its repair needs no status): written only when one holds the
    // lock now, until it has read it (see waitExit). One that comes later finds
    // the container removed, as it did when it came after the lock was taken.
    const known = config;
    const leaveExit = () => exit && writeExitFile(opts.id, exit);
    if (known) await withLockAfterExit(opts.id, () => finalize(opts.id, false, true, known), leaveExit);
    mark("cleaned up");
  }
}
