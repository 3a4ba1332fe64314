/*
 * nsbox - shim.c: the tiny static program for every process that may outlive the
 * nsbox command. A process forked from Bun would keep Bun's ~40 MB; this one is a few
 * kilobytes, built at build time (gcc -static -nostdlib, after arch_<arch>.c and
 * lib.c), embedded in nsbox and executed from a sealed memfd. Its name (argv[0])
 * picks the role:
 *
 *   nsbox-init PATH ARGV0 ARGS...   PID 1 of a container (--init): runs the command,
 *                                   forwards signals to it, reaps orphans, exits
 *                                   with the command's status
 *   nsbox-pause                     a pod's infra process (as Kubernetes' pause.c):
 *                                   sleeps; exits on SIGINT/SIGTERM; reaps on SIGCHLD
 *   nsbox-monitor EXITFILE LOG MAX -- CMD...
 *                                   parent of a detached container (as conmon): logs
 *                                   its stdout (fd 3) and stderr (fd 4), records its
 *                                   exit status, then execs CMD (nsbox's cleanup)
 *   nsbox-fg PID MASTER FLAGS EXITFILE OOMFILE LIMIT -- CMD...
 *                                   what a foreground `nsbox run` execs into once
 *                                   its container started (csrc/shim_fg.c)
 *   nsbox-spawn MEMFD WLEN CLEN SYNC STATUS
 *                                   W, the parent of a container's first process:
 *                                   runs the two programs nsbox encoded (in MEMFD),
 *                                   W's here, C's in the child it clones (see
 *                                   nsb_spawn in csrc/host_calls.c)
 *
 * Signals are never handled asynchronously: all are blocked and taken one at a
 * time with rt_sigtimedwait (or signalfd), so no handler, no restorer, no races.
 */

static u64 all_signals(void) { return ~0ull; }

static u64 sigbit(int sig) { return 1ull << (sig - 1); }

static int wait_signal(const u64 *set, struct siginfo *si) {
    long r;
    do r = SC4(SYS_rt_sigtimedwait, set, si, 0, 8);
    while (r == -EINTR);
    return (int)r;
}

static int exit_code_of(int status) {
    int sig = status & 0x7f;
    return sig ? 128 + sig : (status >> 8) & 0xff;
}

static void say(const char *a, const char *b, const char *c) {
    char buf[512];
    size_t len = 0;
    buf[0] = 0;
    nsb_append(buf, sizeof buf, &len, a);
    nsb_append(buf, sizeof buf, &len, b);
    nsb_append(buf, sizeof buf, &len, c);
    nsb_append(buf, sizeof buf, &len, "\n");
    nsb_write_all(2, buf, len);
}

/* ---- nsbox-init ---- */

static int init_main(int argc, char **argv, char **envp) {
    u64 set = all_signals(), none = 0;
    struct siginfo si;
    long child;
    int status;
    if (argc < 3) {
        say("nsbox-init: ", "usage: nsbox-init PATH ARGV0 [ARGS...]", "");
        return 125;
    }
    sys_prctl(PR_SET_NAME, (long)"nsbox-init", 0);
    sys_rt_sigprocmask(SIG_SETMASK, &set, NULL);
    child = SC2(SYS_clone, SIGCHLD, 0);
    if (child < 0) {
        say("nsbox: init cannot start the command: fork failed", child == -EAGAIN ? " (the container's process limit, --pids-limit, leaves no room for it)" : "", "");
        return 125;
    }
    if (child == 0) {
        /* The command gets its own process group, made the terminal's foreground
         * group: Ctrl-C reaches it (and not init twice). SIGTTOU is still blocked
         * here, so tcsetpgrp from the background works. */
        int pgid;
        SC2(SYS_setpgid, 0, 0);
        pgid = (int)sys_getpid();
        sys_ioctl(0, 0x5410 /* TIOCSPGRP */, (long)&pgid);
        sys_rt_sigprocmask(SIG_SETMASK, &none, NULL);
        {
            long r = sys_execve(argv[1], argv + 2, envp);
            say("nsbox: exec \"", argv[1], r == -ENOENT ? "\": no such file or directory (its interpreter?)" : "\": cannot execute it (exec format error or permission denied)");
            sys_exit(r == -ENOENT ? 127 : 126);
        }
    }
    for (;;) {
        int sig = wait_signal(&set, &si);
        if (sig == SIGCHLD) {
            long pid;
            while ((pid = sys_wait4(-1, &status, WNOHANG)) > 0)
                if (pid == child) return exit_code_of(status);
        } else if (sig > 0) {
            sys_kill((int)child, sig);
        }
    }
}

/* ---- nsbox-pause ---- */

static int pause_main(void) {
    u64 set = all_signals();
    struct siginfo si;
    int status;
    sys_prctl(PR_SET_NAME, (long)"nsbox-pause", 0);
    sys_rt_sigprocmask(SIG_SETMASK, &set, NULL);
    if (sys_getpid() != 1) say("nsbox-pause: ", "warning: pause should be the first process", "");
    for (;;) {
        int sig = wait_signal(&set, &si);
        if (sig == SIGINT || sig == SIGTERM) {
            say("nsbox-pause: shutting down, got signal ", sig == SIGINT ? "SIGINT" : "SIGTERM", "");
            return 0;
        }
        if (sig == SIGCHLD)
            while (sys_wait4(-1, &status, WNOHANG) > 0) {
            }
    }
}

/* ---- nsbox-monitor ---- */

/* RFC 3339 UTC time with nanoseconds into out (at least 32 bytes). */
static void rfc3339(char *out, i64 sec, long nsec) {
    i64 days = sec / 86400, rem = sec % 86400, y, era, doe, yoe, doy, mp, d, m;
    char *p = out;
    int k;
    /* civil_from_days (Howard Hinnant) */
    days += 719468;
    era = days / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) y++;
#define TWO(v) (*p++ = (char)('0' + (v) / 10 % 10), *p++ = (char)('0' + (v) % 10))
    *p++ = (char)('0' + y / 1000 % 10);
    *p++ = (char)('0' + y / 100 % 10);
    TWO(y);
    *p++ = '-';
    TWO(m);
    *p++ = '-';
    TWO(d);
    *p++ = 'T';
    TWO(rem / 3600);
    *p++ = ':';
    TWO(rem / 60 % 60);
    *p++ = ':';
    TWO(rem % 60);
    *p++ = '.';
    for (k = 100000000; k >= 1; k /= 10) *p++ = (char)('0' + nsec / k % 10);
    *p++ = 'Z';
    *p = 0;
#undef TWO
}

struct logfile {
    const char *path;
    char rotated[4096];
    i64 max, size;
    int fd;
    int partial[2]; /* the last line written for stdout/stderr did not end */
};

static void log_open(struct logfile *lf) {
    lf->fd = (int)sys_openat(AT_FDCWD, lf->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    lf->size = 0;
    if (lf->fd >= 0) {
        struct nsb_statx st;
        if (SC5(SYS_statx, lf->fd, "", AT_EMPTY_PATH, 0x200 /* STATX_SIZE */, &st) == 0) lf->size = (i64)st.stx_size;
    }
}

/* Keeps the log under its cap: the current file becomes LOG.1 (one generation). */
static void log_rotate_if_needed(struct logfile *lf, size_t incoming) {
    if (lf->max <= 0 || lf->size + (i64)incoming <= lf->max) return;
    sys_close(lf->fd);
    sys_renameat(AT_FDCWD, lf->path, AT_FDCWD, lf->rotated);
    log_open(lf);
}

/* Writes data from stream (0 stdout, 1 stderr) as CRI log lines:
 *   2026-11-23T08:00:00.123456789Z stdout F text      (F: full line, P: partial) */
#define LOG_SEGMENT 16384 /* longer lines are written as P (partial) pieces of this size */
static void log_write(struct logfile *lf, int stream, const u8 *data, size_t n) {
    static char line[64 + LOG_SEGMENT];
    struct timespec ts;
    size_t i = 0;
    sys_clock_gettime(CLOCK_REALTIME, &ts);
    while (i < n) {
        size_t j = i, len = 0;
        int full;
        while (j < n && data[j] != '\n' && j - i < LOG_SEGMENT) j++;
        full = j < n && data[j] == '\n';
        rfc3339(line, ts.tv_sec, ts.tv_nsec);
        len = nsb_strlen(line);
        nsb_append(line, sizeof line, &len, stream ? " stderr " : " stdout ");
        line[len++] = full ? 'F' : 'P';
        line[len++] = ' ';
        memcpy(line + len, data + i, j - i);
        len += j - i;
        line[len++] = '\n';
        log_rotate_if_needed(lf, len);
        if (lf->fd >= 0 && nsb_write_all(lf->fd, line, len) == 0) lf->size += (i64)len;
        lf->partial[stream] = !full;
        i = full ? j + 1 : j;
    }
}

/* exit file: {"waitStatus":N,"finishedAt":"RFC3339","finishedNs":N}, written to
 * EXITFILE.tmp and renamed, so a reader sees all of it or nothing. */
static void write_exit(const char *path, int status) {
    char tmp[4200], buf[256], num[24], when[40];
    size_t tl = 0, bl = 0;
    struct timespec ts;
    long fd;
    sys_clock_gettime(CLOCK_REALTIME, &ts);
    rfc3339(when, ts.tv_sec, ts.tv_nsec);
    tmp[0] = buf[0] = 0;
    if (nsb_append(tmp, sizeof tmp, &tl, path) || nsb_append(tmp, sizeof tmp, &tl, ".tmp")) return;
    nsb_append(buf, sizeof buf, &bl, "{\"waitStatus\":");
    nsb_append(buf, sizeof buf, &bl, nsb_itoa(status, num));
    nsb_append(buf, sizeof buf, &bl, ",\"finishedAt\":\"");
    nsb_append(buf, sizeof buf, &bl, when);
    nsb_append(buf, sizeof buf, &bl, "\",\"finishedNs\":");
    nsb_append(buf, sizeof buf, &bl, nsb_itoa(ts.tv_sec * 1000000000ll + ts.tv_nsec, num));
    nsb_append(buf, sizeof buf, &bl, "}\n");
    fd = sys_openat(AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    nsb_write_all((int)fd, buf, bl);
    sys_fsync((int)fd);
    sys_close((int)fd);
    sys_renameat(AT_FDCWD, tmp, AT_FDCWD, path);
}

static int monitor_main(int argc, char **argv, char **envp) {
    /* As large as a pipe's default capacity: one read takes all that is pending on
     * a stream, so output written before the other stream's is logged before it
     * even when the monitor was late to run (the order across two pipes is
     * otherwise unknown, as in docker). */
    static u8 buf[65536];
    struct logfile lf;
    struct pollfd pfd[3];
    u64 set = sigbit(SIGCHLD);
    long sfd, child_status = -1;
    int status, open_pipes = 2, k;
    size_t len = 0;
    /* argv: nsbox-monitor EXITFILE LOG MAXBYTES -- CMD... */
    if (argc < 5 || !nsb_streq(argv[4], "--")) {
        say("nsbox-monitor: ", "usage: nsbox-monitor EXITFILE LOG MAXBYTES -- CMD...", "");
        return 125;
    }
    memset(&lf, 0, sizeof lf);
    lf.path = argv[2];
    lf.max = nsb_atoi(argv[3]);
    lf.rotated[0] = 0;
    nsb_append(lf.rotated, sizeof lf.rotated, &len, lf.path);
    nsb_append(lf.rotated, sizeof lf.rotated, &len, ".1");
    log_open(&lf);
    sys_prctl(PR_SET_NAME, (long)"nsbox-monitor", 0);
    sys_rt_sigprocmask(SIG_BLOCK, &set, NULL);
    sfd = SC4(SYS_signalfd4, -1, &set, 8, O_CLOEXEC | O_NONBLOCK);
    /* The container may have died before SIGCHLD was blocked above: while this
     * process was still W (SIGCHLD at its default, discarded) or being exec'd,
     * e.g. when nsbox was killed before GO and the container gave up. No signal
     * will come for it then, and the loop below would wait forever next to a
     * zombie: reap what is already dead now. Later deaths queue on sfd. */
    while (sys_wait4(-1, &status, WNOHANG) > 0)
        if (child_status < 0) child_status = status;
    pfd[0].fd = 3;
    pfd[1].fd = 4;
    pfd[2].fd = (int)sfd;
    for (k = 0; k < 3; k++) pfd[k].events = POLLIN;
    /* Run until the container has exited and both pipes are closed. When the
     * container's PID 1 dies, the kernel kills the rest of its pid namespace, so
     * the pipes close soon after; a shared pid namespace (a pod) may keep a writer,
     * so once the container is gone we only drain what is already there. */
    while (open_pipes > 0 || child_status < 0) {
        struct timespec drain;
        long r;
        drain.tv_sec = 0;
        drain.tv_nsec = 100000000;
        r = SC5(SYS_ppoll, pfd, 3, child_status >= 0 ? &drain : NULL, 0, 8);
        if (r == -EINTR) continue;
        if (r == 0 && child_status >= 0) break; /* exited, and nothing more to read */
        for (k = 0; k < 2; k++) {
            if (pfd[k].fd < 0 || !(pfd[k].revents & (POLLIN | POLLHUP | 8 /* POLLERR */))) continue;
            r = sys_read(pfd[k].fd, buf, sizeof buf);
            if (r > 0) {
                log_write(&lf, k, buf, (size_t)r);
            } else if (r == 0 || (r < 0 && r != -EAGAIN && r != -EINTR)) {
                sys_close(pfd[k].fd);
                pfd[k].fd = -1;
                open_pipes--;
            }
        }
        if (pfd[2].revents & POLLIN) {
            struct siginfo si;
            while (sys_read((int)sfd, &si, 128) > 0) {
            }
            while (sys_wait4(-1, &status, WNOHANG) > 0)
                if (child_status < 0) child_status = status;
        }
    }
    if (lf.fd >= 0) sys_close(lf.fd);
    write_exit(argv[1], (int)child_status);
    if (argc > 5) {
        u64 none = 0;
        sys_rt_sigprocmask(SIG_SETMASK, &none, NULL);
        sys_execve(argv[5], argv + 5, envp);
        say("nsbox-monitor: cannot run ", argv[5], " for cleanup");
    }
    return 0;
}

static int fg_main(int argc, char **argv, char **envp); /* csrc/shim_fg.c, built after this file */

/* ---- nsbox-spawn ---- */

static int spawn_main(int argc, char **argv) {
    long mfd, wlen, clen, sync, status, mem;
    if (argc != 6) {
        say("nsbox-spawn: ", "usage: nsbox-spawn MEMFD WLEN CLEN SYNC STATUS (nsbox runs it)", "");
        return 125;
    }
    mfd = nsb_atoi(argv[1]);
    wlen = nsb_atoi(argv[2]);
    clen = nsb_atoi(argv[3]);
    sync = nsb_atoi(argv[4]);
    status = nsb_atoi(argv[5]);
    /* named as the fork of nsbox it replaces (an execveat from an fd names a process by the fd's number) */
    sys_prctl(PR_SET_NAME, (long)"nsbox", 0);
    /* close-on-exec again, as nsbox made them: C's successful execve must close its end */
    sys_fcntl((int)sync, F_SETFD, FD_CLOEXEC);
    sys_fcntl((int)status, F_SETFD, FD_CLOEXEC);
    mem = nsb_syscall6(SYS_mmap, 0, wlen + clen, 1 /* PROT_READ */, 2 /* MAP_PRIVATE */, mfd, 0);
    sys_close((int)mfd);
    if (wlen <= 0 || (mem < 0 && mem > -4096)) return 125;
    run_w((const u8 *)mem, (int)wlen, (const u8 *)mem + wlen, (int)clen, (int)sync, (int)status);
    return 125; /* run_w ends the process itself */
}

static const char *basename_of(const char *p) {
    const char *b = p;
    for (; *p; p++)
        if (*p == '/') b = p + 1;
    return b;
}

/* Called by _start (arch_<arch>.c) with the initial stack: argc, argv..., 0, envp... */
void nsb_start(long *sp) {
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    const char *name = argc > 0 ? basename_of(argv[0]) : "";
    if (nsb_streq(name, "nsbox-init")) sys_exit(init_main(argc, argv, envp));
    if (nsb_streq(name, "nsbox-pause")) sys_exit(pause_main());
    if (nsb_streq(name, "nsbox-monitor")) sys_exit(monitor_main(argc, argv, envp));
    if (nsb_streq(name, "nsbox-fg")) sys_exit(fg_main(argc, argv, envp));
    if (nsb_streq(name, "nsbox-spawn")) sys_exit(spawn_main(argc, argv));
    say("nsbox shim: unknown role ", name, " (expected nsbox-spawn, nsbox-init, nsbox-pause, nsbox-monitor or nsbox-fg)");
    sys_exit(125);
}
