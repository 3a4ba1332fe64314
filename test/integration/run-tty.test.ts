/**
 * `nsbox run -t` through real terminals: tmux (a pty whose size we control and
 * whose keys we type) and script(1).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { childrenOf, cmdlineOf, isForegroundShim, lines, ls, NSBOX, pidsWithCmdline, removalsDone, tryKill, useNsbox, waitUntil } from "../helpers/nsbox.ts";

const ctx = useNsbox("tty");
const sockets: string[] = [];

ctx.beforeCleanup(() => {
  for (const s of sockets) Bun.spawnSync(["tmux", "-L", s, "kill-server"], { stderr: "ignore" });
});

/** busybox sh's prompt for root in / */
const PROMPT = /^\/ #/m;
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A detached tmux session on a private server, running one shell command line. */
class Tmux {
  readonly socket: string;
  constructor(
    commandLine: string,
    readonly width = 120,
    readonly height = 40,
  ) {
    this.socket = `nsbox-test-${process.pid}-${sockets.length}`;
    sockets.push(this.socket);
    const r = this.tmux(["-f", "/dev/null", "new-session", "-d", "-x", String(width), "-y", String(height), "-s", "main", commandLine]);
    if (r.exitCode !== 0) throw new Error(`tmux new-session failed: ${r.stderr.toString()}`);
    // keep the pane's text when its command ends
    this.tmux(["set-option", "-g", "remain-on-exit", "on"]);
  }

  tmux(args: string[]) {
    return Bun.spawnSync(["tmux", "-L", this.socket, ...args], { stdout: "pipe", stderr: "pipe", env: ctx.env() });
  }

  /** Types text (literally), then Enter. */
  type(text: string): void {
    this.tmux(["send-keys", "-t", "main", "-l", text]);
    this.tmux(["send-keys", "-t", "main", "Enter"]);
  }

  keys(...keys: string[]): void {
    this.tmux(["send-keys", "-t", "main", ...keys]);
  }

  screen(): string {
    return this.tmux(["capture-pane", "-p", "-J", "-t", "main", "-S", "-500"]).stdout.toString();
  }

  async waitFor(re: RegExp, timeoutMs = 10000): Promise<RegExpMatchArray> {
    const m = await waitUntil(() => this.screen().match(re), timeoutMs);
    if (!m) throw new Error(`the terminal never showed ${re}; screen:\n${this.screen()}`);
    return m;
  }

  paneTty(): string {
    return this.tmux(["display-message", "-p", "-t", "main", "#{pane_tty}"]).stdout.toString().trim();
  }

  /** stty -a of the pane's terminal, read from outside */
  sttyOutside(): string {
    return Bun.spawnSync(["stty", "-a", "-F", this.paneTty()], { stdout: "pipe" }).stdout.toString();
  }

  resize(width: number, height: number): void {
    const r = this.tmux(["resize-window", "-t", "main", "-x", String(width), "-y", String(height)]);
    if (r.exitCode !== 0) throw new Error(`tmux resize-window failed: ${r.stderr.toString()}`);
  }

  /** The nsbox processes the pane's shell started. */
  nsboxPids(): number[] {
    const pane = Number(this.tmux(["display-message", "-p", "-t", "main", "#{pane_pid}"]).stdout.toString().trim());
    if (!pane) return [];
    return childrenOf(pane).filter((p) => cmdlineOf(p)[0] === NSBOX || isForegroundShim(p));
  }

  /**
   * Ends the containers (SIGKILL to their PID 1, so that nsbox cleans up), then
   * the tmux server.
   */
  async kill(): Promise<void> {
    const nsboxes = this.nsboxPids();
    for (const n of nsboxes) for (const c of childrenOf(n)) tryKill(c);
    await waitUntil(() => nsboxes.every((p) => !existsSync(`/proc/${p}`)), 5000);
    this.tmux(["kill-server"]);
  }
}

/** The pane runs nsbox -it with an interactive sh, then reports how it exited and the terminal's state. */
function nsboxSession(flags: string[] = [], width = 120, height = 40): Tmux {
  const env = ctx.env();
  const cmd = [
    `NSBOX_ROOT=${q(env.NSBOX_ROOT as string)} NSBOX_STATE=${q(env.NSBOX_STATE as string)}`,
    q(NSBOX),
    "run",
    "-it",
    ...flags.map(q),
    q(ctx.rootfs),
    "/bin/sh",
  ].join(" ");
  return new Tmux(`stty -a > /dev/null; echo OUTER-START; ${cmd}; echo "EXITED=$?"; stty -a; echo OUTER-END; sleep 600`, width, height);
}

/** Pattern of "key=value" lines printed by a marker command: M1-<name>=<value>. */
async function ask(t: Tmux, name: string, shellExpr: string): Promise<string> {
  t.type(`echo "M1-${name}=$(${shellExpr})"`);
  const m = await t.waitFor(new RegExp(`^M1-${name}=(.*)$`, "m"));
  return (m[1] as string).trim();
}

describe("-t in tmux", () => {
  test("tty is /dev/pts/0 of the container's own devpts; stdin, stdout and stderr are the terminal", async () => {
    const t = nsboxSession();
    try {
      await t.waitFor(PROMPT);
      expect(await ask(t, "tty", "tty")).toBe("/dev/pts/0");
      expect(await ask(t, "fds", "for f in 0 1 2; do readlink /proc/1/fd/$f; done | tr '\\n' ' '")).toBe("/dev/pts/0 /dev/pts/0 /dev/pts/0");
      expect(await ask(t, "pts", "ls /dev/pts | tr '\\n' ' '")).toBe("0 ptmx");
      expect(await ask(t, "pid", "echo $$")).toBe("1");
      // the controlling terminal: the shell is its session and foreground group leader
      expect(await ask(t, "ctty", "cut -d' ' -f7 /proc/1/stat")).toBe(String((0x88 << 8) | 0));
    } finally {
      await t.kill();
    }
  });

  test("stty size matches the outer terminal, and follows a resize (SIGWINCH)", async () => {
    const t = nsboxSession([], 120, 40);
    try {
      await t.waitFor(PROMPT);
      expect(await ask(t, "size1", "stty size")).toBe("40 120");
      t.type(`trap 'echo WINCH-SEEN' WINCH`);
      t.resize(100, 30);
      await Bun.sleep(300);
      expect(await ask(t, "size2", "stty size")).toBe("30 100");
      t.resize(132, 50);
      await Bun.sleep(300);
      expect(await ask(t, "size3", "stty size")).toBe("50 132");
      // the container's foreground process was told (SIGWINCH from its own pty)
      expect(t.screen()).toContain("WINCH-SEEN");
    } finally {
      await t.kill();
    }
  });

  test("with -it, nsbox waits as the shim (nsbox-fg, under 4 MB Pss): typing, resize and the exit code go through it", async () => {
    const t = nsboxSession([], 120, 40);
    try {
      await t.waitFor(PROMPT);
      const pid = await waitUntil(() => t.nsboxPids().find(isForegroundShim), 5000);
      expect(pid).toBeDefined();
      const pss = Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1]);
      expect(pss).toBeLessThan(4096);
      expect(await ask(t, "size1", "stty size")).toBe("40 120");
      t.resize(90, 25);
      await Bun.sleep(300);
      expect(await ask(t, "size2", "stty size")).toBe("25 90");
      t.type("exit 6");
      await t.waitFor(/OUTER-END/);
      expect(t.screen()).toContain("EXITED=6");
      const outside = t.sttyOutside();
      expect(outside).toMatch(/(^|\s)icanon(\s|$)/m);
      expect(outside).toMatch(/(^|\s)echo(\s|$)/m);
    } finally {
      await t.kill();
    }
  });

  test("Ctrl-C interrupts `sleep` inside; the shell and nsbox stay alive", async () => {
    const t = nsboxSession();
    try {
      await t.waitFor(PROMPT);
      t.type("sleep 4321");
      const sleeping = await waitUntil(() => pidsWithCmdline(["sleep", "4321"]).length > 0, 5000);
      expect(sleeping).toBe(true);
      await Bun.sleep(200);
      t.keys("C-c");
      const gone = await waitUntil(() => pidsWithCmdline(["sleep", "4321"]).length === 0, 5000);
      expect(gone).toBe(true);
      expect(await ask(t, "alive", "echo alive-$$")).toBe("alive-1");
      expect(t.screen()).not.toContain("EXITED=");
    } finally {
      await t.kill();
    }
  });

  test("the outer terminal is raw while the container runs and restored after it exits", async () => {
    const t = nsboxSession();
    try {
      await t.waitFor(PROMPT);
      const during = t.sttyOutside();
      expect(during).toMatch(/(^|\s)-icanon(\s|$)/);
      expect(during).toMatch(/(^|\s)-echo(\s|$)/);
      t.type("exit 3");
      await t.waitFor(/OUTER-END/);
      const screen = t.screen();
      expect(screen).toContain("EXITED=3");
      // stty -a printed by the outer shell after nsbox
      const after = screen.slice(screen.indexOf("EXITED=3"));
      expect(after).toMatch(/(^|\s)icanon(\s|$)/m);
      expect(after).toMatch(/(^|\s)echo(\s|$)/m);
      const outside = t.sttyOutside();
      expect(outside).toMatch(/(^|\s)icanon(\s|$)/m);
      expect(outside).toMatch(/(^|\s)echo(\s|$)/m);
    } finally {
      await t.kill();
    }
  });

  test("the terminal is restored when the container is killed from outside", async () => {
    const t = nsboxSession();
    try {
      await t.waitFor(PROMPT);
      t.type("exec sleep 9876");
      const pid = await waitUntil(() => pidsWithCmdline(["sleep", "9876"])[0], 5000);
      expect(pid).toBeDefined();
      process.kill(pid as number, "SIGKILL");
      await t.waitFor(/OUTER-END/);
      const screen = t.screen();
      expect(screen).toContain("EXITED=137");
      const outside = t.sttyOutside();
      expect(outside).toMatch(/(^|\s)icanon(\s|$)/m);
      expect(outside).toMatch(/(^|\s)echo(\s|$)/m);
      expect(await removalsDone(ctx.env())).toEqual([]);
      expect(ls(join(ctx.dataRoot, "containers"))).toEqual([]);
    } finally {
      await t.kill();
    }
  });

  test("when the outer terminal hangs up (tmux killed), nsbox ends and cleans up", async () => {
    const t = nsboxSession();
    const nsbox = await waitUntil(() => t.nsboxPids()[0], 5000);
    try {
      await t.waitFor(PROMPT);
      expect(nsbox).toBeDefined();
      t.tmux(["kill-server"]);
      const gone = await waitUntil(() => !existsSync(`/proc/${nsbox}`), 5000);
      expect(gone).toBe(true);
      expect(await removalsDone(ctx.env())).toEqual([]);
      expect(ls(join(ctx.dataRoot, "containers"))).toEqual([]);
    } finally {
      // a surviving nsbox and its container must not outlive the test
      if (nsbox && existsSync(`/proc/${nsbox}`)) {
        for (const c of childrenOf(nsbox)) tryKill(c);
        await waitUntil(() => !existsSync(`/proc/${nsbox}`), 5000);
      }
    }
  });

  test("TERM=xterm inside with -t (whatever the outer TERM)", async () => {
    const t = nsboxSession();
    try {
      await t.waitFor(PROMPT);
      expect(await ask(t, "term", "echo $TERM")).toBe("xterm");
    } finally {
      await t.kill();
    }
  });

  test("-e TERM=... overrides the default", async () => {
    const t = nsboxSession(["-e", "TERM=vt100"]);
    try {
      await t.waitFor(PROMPT);
      expect(await ask(t, "term", "echo $TERM")).toBe("vt100");
    } finally {
      await t.kill();
    }
  });
});

describe("-t with script(1)", () => {
  /** Runs a command line inside script's pty; returns its output (CRLF as LF). */
  function script(commandLine: string, env: Record<string, string | undefined> = {}) {
    const r = Bun.spawnSync(["script", "-qfec", commandLine, "/dev/null"], {
      env: ctx.env(env),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      timeout: 20000,
    });
    return { code: r.exitCode, out: r.stdout.toString().replace(/\r\n/g, "\n") };
  }

  test("tty prints /dev/pts/0; without -t there is no terminal", async () => {
    const withT = script(`${q(NSBOX)} run -t ${q(ctx.rootfs)} tty`);
    expect(withT.out.trim()).toBe("/dev/pts/0");
    expect(withT.code).toBe(0);
    const withoutT = script(`${q(NSBOX)} run ${q(ctx.rootfs)} tty`);
    expect(withoutT.out.trim()).toBe("not a tty");
    expect(withoutT.code).toBe(1);
  });

  test("TERM=xterm with -t when the outer TERM is unset; no TERM without -t", async () => {
    const withT = script(`${q(NSBOX)} run -t ${q(ctx.rootfs)} sh -c 'echo "T=\${TERM-none}"'`, { TERM: undefined });
    expect(withT.out.trim()).toBe("T=xterm");
    const withoutT = script(`${q(NSBOX)} run ${q(ctx.rootfs)} sh -c 'echo "T=\${TERM-none}"'`, { TERM: "xterm-256color" });
    expect(withoutT.out.trim()).toBe("T=none");
  });

  test("the exit code comes through -t", async () => {
    const r = script(`${q(NSBOX)} run -t ${q(ctx.rootfs)} sh -c 'exit 6'; echo "code=$?"`);
    expect(lines(r.out).pop()).toBe("code=6");
  });
});
