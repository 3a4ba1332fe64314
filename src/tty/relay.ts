/**
 * The terminal of `run -t`: the container's pty master is relayed to nsbox's own
 * terminal, which goes into raw mode so that every key (Ctrl-C included) reaches
 * the container's line discipline and its foreground process, not nsbox.
 * Raw mode is undone on every way out: normal exit, error, signal (see restore()).
 */
import { readlinkSync, writeSync } from "../native/fs.ts";
import { getWinsize, setWinsize, termiosRaw, termiosSet } from "../native/spawn.ts";

let saved: Uint8Array | undefined;

/** isatty(fd) without loading node:tty (~3 ms of start-up): the fd leads to a terminal device. */
export function isTerminal(fd: number): boolean {
  try {
    return /^\/dev\/(pts\/\d+|tty\w*|console)$/.test(readlinkSync(`/proc/self/fd/${fd}`));
  } catch {
    return false;
  }
}

/**
 * Puts the host terminal (stdin) into raw mode, as cfmakeraw does (Node's raw
 * mode keeps output processing on: the container's \r\n would become \r\r\n);
 * returns false when stdin is not a terminal.
 */
export function enterRaw(): boolean {
  saved = termiosRaw(0);
  if (!saved) return false;
  process.once("exit", restoreTerminal);
  return true;
}

/** Restores the host terminal as it was; safe to call more than once. */
export function restoreTerminal(): void {
  if (!saved) return;
  termiosSet(0, saved);
  saved = undefined;
}

export function hostWinsize(): { rows: number; cols: number } | undefined {
  for (const fd of [0, 1, 2]) {
    const ws = getWinsize(fd);
    if (ws?.rows && ws.cols) return ws;
  }
  return undefined;
}

let nodeRead: typeof import("node:fs").read | undefined;

/** A read on Bun's thread pool (a terminal's read blocks): node:fs, loaded by -t alone. */
async function readAsync(fd: number, buf: Buffer): Promise<number> {
  nodeRead ??= (await import("node:fs")).read;
  const read = nodeRead;
  return new Promise((resolve) => read(fd, buf, 0, buf.length, null, (err, n) => resolve(err ? -1 : n)));
}

function writeAll(fd: number, data: Uint8Array): boolean {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
      return false;
    }
  }
  return true;
}

export interface Relay {
  /** resolves when the container side of the terminal is closed (all output copied) */
  done: Promise<void>;
  stop(): void;
}

/**
 * Copies master -> stdout until the pty closes, and stdin -> master while
 * `interactive`; keeps the container's window size in step with ours (SIGWINCH).
 */
export function relayPty(master: number, interactive: boolean, onHangup: () => void): Relay {
  const onWinch = () => {
    const ws = hostWinsize();
    if (ws) setWinsize(master, ws.rows, ws.cols);
  };
  process.on("SIGWINCH", onWinch);
  let stopped = false;
  if (interactive) {
    // stdin -> master, read on a worker thread (no Node stream: its
    // buffering and end handling have nothing to do with a terminal)
    (async () => {
      const buf = Buffer.allocUnsafe(4096);
      while (!stopped) {
        const n = await readAsync(0, buf);
        if (stopped) break;
        if (n < 0) {
          onHangup(); // our terminal is gone
          break;
        }
        if (n === 0) break;
        writeAll(master, buf.subarray(0, n));
      }
    })();
  }
  const done = (async () => {
    const buf = Buffer.allocUnsafe(65536);
    for (;;) {
      const n = await readAsync(master, buf);
      if (n <= 0) break; // EIO: every process of the container closed the terminal
      if (!writeAll(1, buf.subarray(0, n))) {
        onHangup(); // our own terminal is gone: nobody will ever see this container
        break;
      }
    }
  })();
  return {
    done,
    stop() {
      stopped = true;
      process.off("SIGWINCH", onWinch);
    },
  };
}
