/*
 * nsbox - shim_fg.c: the nsbox-fg role of the shim (concatenated after shim.c).
 *
 *   nsbox-fg PID MASTER FLAGS EXITFILE OOMFILE LIMIT -- CMD...
 *
 * FLAGS: "i" (stdin relayed, -i) or "-", then "h" if a SIGHUP came before the handoff
 * (nsbox's C forwarder sent it on; one that comes later is pending for us).
 *
 * What `nsbox run` (foreground) becomes once its container has started: Bun
 * execve()s this, so that the ~40 MB of a waiting Bun process become a few
 * kilobytes; the same process, so the container stays its child (nsbox is a
 * subreaper, and that survives execve), the shell still waits for the same pid,
 * and signals sent to `nsbox run` now come here. It does what runForeground did
 * in Bun (src/container/foreground.ts):
 *
 *   - forwards FORWARDED_SIGNALS to PID (those that came during the handoff stay
 *     pending across execve: every thread of Bun blocked them before it, see
 *     fwd_handoff in fg_forward.c), with -t a SIGHUP while
 *     no terminal is left is followed by SIGKILL a second later;
 *   - with a pty MASTER (fd, or -1): relays MASTER -> stdout, and with FLAGS "i"
 *     stdin -> MASTER with stdin in raw mode (restored on the way out), and keeps
 *     the container's window size in step with ours (SIGWINCH);
 *   - waits for PID (and reaps any orphan that comes to it), writes EXITFILE,
 *     reports an OOM kill read from OOMFILE (the cgroup's memory.events or
 *     memory.oom_control; "" without one) with LIMIT (" (limit 64 MiB)" or "");
 *   - runs CMD (nsbox's cleanup) and waits for it, then exits with PID's code
 *     (128+N for a signal): the container is gone before the shell gets the
 *     prompt back, as before (see bench/results.md for the order measured).
 */

#ifndef SIGUSR2
#define SIGUSR2 12
#endif
#define POLLOUT 4

#define FG_NSIG_FORWARDED 6
static const int fg_forwarded[FG_NSIG_FORWARDED] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static u64 fg_forward_mask(void) {
    u64 m = 0;
    int k;
    for (k = 0; k < FG_NSIG_FORWARDED; k++) m |= sigbit(fg_forwarded[k]);
    return m;
}

static i64 fg_now_ms(void) {
    struct timespec ts;
    sys_clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The host's window size (stdin, stdout or stderr, the first that is a terminal
 * with a size), as hostWinsize() in src/tty/relay.ts; 0 when there is none. */
static int fg_host_winsize(u16 ws[4]) {
    int fd;
    for (fd = 0; fd < 3; fd++)
        if (sys_ioctl(fd, 0x5413 /* TIOCGWINSZ */, (long)ws) == 0 && ws[0] && ws[1]) return 1;
    return 0;
}

static void fg_resize(int master) {
    u16 ws[4];
    if (master >= 0 && fg_host_winsize(ws)) sys_ioctl(master, 0x5414 /* TIOCSWINSZ */, (long)ws);
}

/* Standard input into raw mode (lib.c's nsb_make_raw); its settings before go to saved. */
static int fg_enter_raw(struct k_termios *saved) { return nsb_make_raw(0, saved) == 0; }

/* "oom_kill N" from a cgroup's memory.events (v2) or memory.oom_control (v1). */
static i64 fg_oom_kills(const char *path) {
    static char text[4096];
    const char *n = path[0] ? nsb_file_field(path, "oom_kill ", text, sizeof text) : 0;
    return n ? nsb_atoi(n) : 0;
}

struct fg {
    int pid, master, tty, interactive, raw, exited;
    int status;
    int stdin_open;
    i64 hup_kill_at; /* -1: none */
    i64 exited_at;
    struct k_termios saved;
};

/* As nsb_write_all, but waits out EAGAIN: the terminal's file may have been left
 * non-blocking (by Bun, or by whoever shares it). */
static long fg_write_all(int fd, const u8 *p, size_t n) {
    while (n) {
        long r = sys_write(fd, p, n);
        if (r == -EINTR) continue;
        if (r == -EAGAIN) {
            struct pollfd w;
            w.fd = fd;
            w.events = POLLOUT;
            SC5(SYS_ppoll, &w, 1, NULL, 0, 8);
            continue;
        }
        if (r < 0) return r;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void fg_kill(struct fg *f) {
    if (!f->exited) sys_kill(f->pid, SIGKILL);
}

static void fg_reap(struct fg *f) {
    long r;
    int st;
    while ((r = sys_wait4(-1, &st, WNOHANG)) > 0)
        if (r == f->pid && !f->exited) {
            f->exited = 1;
            f->status = st;
            f->exited_at = fg_now_ms();
        }
    if (r == -ECHILD && !f->exited) { /* not ours (cannot happen): the status is unknown, as in exitwatch.ts */
        f->exited = 1;
        f->status = 255 << 8;
        f->exited_at = fg_now_ms();
    }
}

static void fg_on_signal(struct fg *f, int sig) {
    if (sig == SIGCHLD) {
        fg_reap(f);
    } else if (sig == SIGWINCH) {
        fg_resize(f->master);
    } else if (!f->exited) {
        u16 ws[4];
        sys_kill(f->pid, sig);
        /* With -t, a SIGHUP usually means our terminal is gone: a PID 1 without a
         * handler would ignore it and live on, unseen. A second, then SIGKILL. */
        if (sig == SIGHUP && f->tty && !fg_host_winsize(ws) && f->hup_kill_at < 0) f->hup_kill_at = fg_now_ms() + 1000;
    }
}

/* Runs CMD with the forwarded signals still blocked (as Bun's cleanup ignored
 * them: a Ctrl-C now must not cut the cleanup short), waits for it. */
static void fg_cleanup(char **cmd, char **envp) {
    u64 keep = fg_forward_mask();
    long child;
    int st;
    child = SC2(SYS_clone, SIGCHLD, 0);
    if (child == 0) {
        sys_rt_sigprocmask(SIG_SETMASK, &keep, NULL);
        sys_execve(cmd[0], cmd, envp);
        say("nsbox: cannot run ", cmd[0], " for the container's cleanup (the next nsbox command will finish it)");
        sys_exit(125);
    }
    if (child < 0) {
        say("nsbox: cannot start the container's cleanup: fork failed", " (the next nsbox command will finish it)", "");
        return;
    }
    for (;;) {
        long r = sys_wait4(-1, &st, 0);
        if (r == child || (r < 0 && r != -EINTR)) return;
    }
}

static int fg_main(int argc, char **argv, char **envp) {
    static u8 buf[65536];
    struct fg f;
    struct pollfd pfd[3];
    struct siginfo si;
    u64 set = fg_forward_mask() | sigbit(SIGCHLD) | sigbit(SIGWINCH) | sigbit(SIGPIPE);
    long sfd;
    if (argc < 8 || !nsb_streq(argv[7], "--")) {
        say("nsbox-fg: ", "usage: nsbox-fg PID MASTER FLAGS EXITFILE OOMFILE LIMIT -- CMD...", "");
        return 125;
    }
    memset(&f, 0, sizeof f);
    f.pid = (int)nsb_atoi(argv[1]);
    f.master = (int)nsb_atoi(argv[2]);
    f.tty = f.master >= 0;
    f.interactive = f.tty && argv[3][0] == 'i';
    f.hup_kill_at = -1;
    /* "h": a SIGHUP came before the handoff (forwarded then; the -t rule is ours) */
    if (f.tty && argv[3][0] && argv[3][1] == 'h') {
        u16 ws[4];
        if (!fg_host_winsize(ws)) f.hup_kill_at = fg_now_ms() + 1000;
    }
    sys_prctl(PR_SET_NAME, (long)"nsbox-fg", 0);
    /* already blocked by Bun before its execve (see src/native/handoff.ts); SIGPIPE
     * too: a closed stdout is an EPIPE to handle, not our death */
    sys_rt_sigprocmask(SIG_BLOCK, &set, NULL);
    set &= ~sigbit(SIGPIPE);
    sfd = SC4(SYS_signalfd4, -1, &set, 8, O_CLOEXEC | O_NONBLOCK);
    if (sfd < 0) { /* nothing to wait with: the container cannot be left unwatched */
        int st;
        say("nsbox-fg: ", "cannot create a signalfd: killing the container", "");
        sys_kill(f.pid, SIGKILL);
        while (!f.exited) {
            long r = sys_wait4(-1, &st, 0);
            if (r == f.pid || (r < 0 && r != -EINTR)) {
                f.exited = 1;
                f.status = r == f.pid ? st : 255 << 8;
            }
        }
        if (f.master >= 0) sys_close(f.master);
        f.master = -1;
    }
    if (f.master >= 0) {
        sys_fcntl(f.master, F_SETFD, FD_CLOEXEC);
        if (f.interactive) f.raw = fg_enter_raw(&f.saved);
        fg_resize(f.master); /* a SIGWINCH during the handoff went to Bun */
    }
    f.stdin_open = f.interactive;
    fg_reap(&f); /* so did a SIGCHLD */
    for (;;) {
        i64 now = fg_now_ms(), deadline = -1;
        struct timespec ts, *tsp = NULL;
        long r;
        int k, n = 0;
        /* done once PID is gone and its terminal output copied (at most a second more) */
        if (f.exited && (f.master < 0 || now - f.exited_at >= 1000)) break;
        if (f.exited) deadline = f.exited_at + 1000;
        if (f.hup_kill_at >= 0 && (deadline < 0 || f.hup_kill_at < deadline)) deadline = f.hup_kill_at;
        if (deadline >= 0) {
            i64 left = deadline > now ? deadline - now : 0;
            ts.tv_sec = left / 1000;
            ts.tv_nsec = (left % 1000) * 1000000;
            tsp = &ts;
        }
        pfd[n].fd = (int)sfd;
        pfd[n++].events = POLLIN;
        if (f.master >= 0) {
            pfd[n].fd = f.master;
            pfd[n++].events = POLLIN;
        }
        if (f.stdin_open) {
            pfd[n].fd = 0;
            pfd[n++].events = POLLIN;
        }
        r = SC5(SYS_ppoll, pfd, n, tsp, 0, 8);
        if (r == -EINTR) continue;
        if (f.hup_kill_at >= 0 && fg_now_ms() >= f.hup_kill_at) {
            fg_kill(&f);
            f.hup_kill_at = -1;
        }
        if (r <= 0) continue;
        for (k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | 8 /* POLLERR */))) continue;
            if (pfd[k].fd == (int)sfd) {
                while (sys_read((int)sfd, &si, 128) == 128) fg_on_signal(&f, (int)si.si_signo);
            } else if (pfd[k].fd == f.master) {
                long got = sys_read(f.master, buf, sizeof buf);
                if (got == -EINTR || got == -EAGAIN) continue;
                if (got <= 0) { /* EIO: every process of the container closed the terminal */
                    sys_close(f.master);
                    f.master = -1;
                    f.stdin_open = 0;
                } else if (fg_write_all(1, buf, (size_t)got) < 0) {
                    fg_kill(&f); /* our own terminal is gone: nobody will ever see this container */
                    sys_close(f.master);
                    f.master = -1;
                    f.stdin_open = 0;
                }
            } else {
                long got = sys_read(0, buf, sizeof buf);
                if (got == -EINTR || got == -EAGAIN) continue;
                if (got < 0) fg_kill(&f); /* our terminal is gone */
                if (got <= 0) f.stdin_open = 0;
                else fg_write_all(f.master, buf, (size_t)got);
            }
        }
    }
    if (f.master >= 0) sys_close(f.master);
    if (f.raw) sys_ioctl(0, 0x5402 /* TCSETS */, (long)&f.saved);
    /* for `nsbox wait` (which holds the lock until it has read this, see waitExit) */
    write_exit(argv[4], f.status);
    if (fg_oom_kills(argv[5]) > 0)
        say((f.status & 0x7f) == SIGKILL ? "nsbox: container killed: out of memory" : "nsbox: a process in the container was killed: out of memory", argv[6], "");
    if (argc > 8) fg_cleanup(argv + 8, envp);
    return exit_code_of(f.status);
}
