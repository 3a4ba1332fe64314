/*
 * nsbox - fg_forward.c: signal handlers that forward to the container, for a
 * foreground `nsbox run` (part of the helper; see src/native/handoff.ts and
 * csrc/shim_fg.c, which takes over once nsbox execs it).
 *
 * Bun's own handlers queue a signal for JavaScript, from whichever thread the
 * kernel picked: a signal whose handler was still on its way (a thread preempted
 * on a loaded machine) when nsbox execs the shim was lost with the process
 * image. These are installed before the container starts and forward in the
 * handler itself, on any thread: kill(2) is async-signal-safe. Until the
 * container exists a signal is only noted, and sent once its pid is known.
 * Installed with rt_sigaction itself (fwd_sigaction: on x86_64 with the helper's
 * own restorer, csrc/arch_x86_64.c), not through libc: nsbox binds one function
 * of libc only (src/native/libc.ts), and each binding costs ~0.15 ms of a start.
 *
 * No read-modify-write atomics (aarch64 would want libgcc's outline helpers):
 * the handler stores "pending" and then reads the target; nsbox stores the
 * target and then reads "pending". Both sequentially consistent, so one of the
 * two sees the other's store: a signal may be sent twice in that race, never lost.
 *
 * The handoff (fwd_handoff): once nsbox has read fwd_hup into the shim's argv,
 * a SIGHUP forwarded here would reach the container without the -t rule (SIGKILL
 * a second later), which only the shim applies: a PID 1 that ignores SIGHUP lived
 * on, and `nsbox run -t` with it (the CI hang of run-foreground-shim). So from
 * then on the handler forwards nothing: it sends the signal on to the thread that
 * execs the shim, which has it blocked; pending there, it survives execve and the
 * shim takes it from its signalfd like any signal that comes later. Same pattern
 * as above: the handler stores fwd_hup and then reads fwd_handoff_tid; nsbox
 * stores fwd_handoff_tid and then reads fwd_hup: a SIGHUP is in the argv, or goes
 * to the shim, or both (the rule is applied once).
 */
/* A real-time signal nothing else in nsbox uses (Bun catches 4-8, 11, 30, 31 and 33):
 * it asks a thread to block the forwarded signals (see fwd_quiet). */
#define FWD_QUIET 62
#ifndef SIGSEGV
#define SIGSEGV 11
#endif
#define SA_SIGINFO 4
#define FWD_SA_RESTART 0x10000000 /* Bun's threads see no EINTR */
/* where the kernel's ucontext (a handler's third argument) holds the mask that
 * rt_sigreturn restores */
#if defined(__x86_64__)
#define FWD_UC_SIGMASK 296 /* flags, link, stack (40 bytes), then the 256-byte sigcontext */
#elif defined(__aarch64__)
#define FWD_UC_SIGMASK 40 /* flags, link, stack, then the mask (the sigcontext comes after) */
#else
#error "fg_forward.c: the offset of uc_sigmask in struct ucontext is not known for this architecture"
#endif
#define FWD_MAX_THREADS 512

/* the container's pid: 0 not known yet (signals are noted), -1 gone (nothing sent) */
static int fwd_target;
static int fwd_hup;
/* 0, or the thread that execs the shim (signals go on to it: see fwd_handoff) */
static int fwd_handoff_tid;
static int fwd_pending[65];
static u64 fwd_signals; /* the forwarded ones (bit N-1 for signal N) */
/* what took the signals before fwd_install (Bun's handlers, as the kernel holds
 * them: glibc's restorer included), for fwd_handoff(0) */
static struct k_sigaction fwd_before[64];
/* fwd_quiet: the threads asked, and which of them said that they block the signals */
static int fwd_quiet_tids[FWD_MAX_THREADS];
static int fwd_quiet_done[FWD_MAX_THREADS];
static int fwd_quiet_n;

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)

/* rt_sigaction with our handler: SA_RESTORER where the kernel needs one */
static long fwd_sigaction(int sig, void *handler, u64 mask, unsigned long flags, struct k_sigaction *old) {
    struct k_sigaction a;
    memset(&a, 0, sizeof a);
    a.handler = handler;
    a.mask = mask;
    a.flags = flags;
#ifdef NSB_RESTORER
    a.flags |= SA_RESTORER;
    a.restorer = (void *)NSB_RESTORER;
#endif
    return sys_rt_sigaction(sig, &a, old);
}

static void fwd_flush(void) {
    int s, pid = LOAD(fwd_target);
    if (pid <= 0) return;
    for (s = 1; s < 65; s++)
        if (LOAD(fwd_pending[s])) {
            STORE(fwd_pending[s], 0);
            sys_kill(pid, s);
        }
}

static void fwd_handler(int sig) {
    int tid;
    if (sig == SIGHUP) STORE(fwd_hup, 1); /* the shim applies the -t rule (see shim_fg.c) */
    tid = LOAD(fwd_handoff_tid);
    if (tid > 0) { /* left pending for the shim (tgkill: sent by this process, always allowed) */
        SC3(SYS_tgkill, sys_getpid(), tid, sig);
        return;
    }
    if (sig > 0 && sig < 65) STORE(fwd_pending[sig], 1);
    fwd_flush();
}

/* From now on the signals in sigs (bit N-1 for signal N) are taken by fwd_handler.
 * Returns 0, or -N when signal N could not be taken. */
static int fwd_install(u64 sigs) {
    int s;
    fwd_signals = sigs;
    /* FWD_QUIET waits until the handler is done: a thread that says it blocks the
     * signals has no forwarded one half-handled either (see fwd_quiet) */
    for (s = 1; s < 64; s++)
        if (sigs & (1ull << (s - 1)))
            if (fwd_sigaction(s, (void *)fwd_handler, 1ull << (FWD_QUIET - 1), FWD_SA_RESTART, &fwd_before[s]) != 0) return -s;
    return 0;
}

/* The container's pid (what was noted before goes to it now), or -1: it is gone. */
static int fwd_set_target(int pid) {
    STORE(fwd_target, pid);
    fwd_flush();
    return 0;
}

/* FWD_QUIET's handler: the thread goes back with the forwarded signals blocked
 * (the mask in the ucontext is what rt_sigreturn restores), and says so. */
static void fwd_quiet_handler(int sig, void *info, void *uc) {
    int tid = (int)SC0(SYS_gettid), i, n = LOAD(fwd_quiet_n);
    (void)sig;
    (void)info;
    *(u64 *)((char *)uc + FWD_UC_SIGMASK) |= fwd_signals;
    for (i = 0; i < n; i++)
        if (LOAD(fwd_quiet_tids[i]) == tid) STORE(fwd_quiet_done[i], 1);
}

/* Whether thread tid blocks every forwarded signal for good: mimalloc's scavenger
 * blocks all but the synchronous ones (FWD_QUIET too, so it never answers). A
 * thread that blocks SIGSEGV too is in one of glibc's moments with all signals
 * blocked (around a pthread_create, say): it will unblock them, and FWD_QUIET
 * reaches it then. */
static int fwd_blocks_for_good(int tid) {
    static char text[4096];
    char path[64], num[24];
    size_t len = 0;
    const char *h;
    u64 mask = 0;
    if (nsb_append(path, sizeof path, &len, "/proc/self/task/") || nsb_append(path, sizeof path, &len, nsb_itoa(tid, num)) ||
        nsb_append(path, sizeof path, &len, "/status"))
        return 0;
    h = nsb_file_field(path, "SigBlk:\t", text, sizeof text);
    if (!h) return 0;
    for (; (*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f'); h++) mask = mask << 4 | (u64)(*h <= '9' ? *h - '0' : *h - 'a' + 10);
    return (mask & fwd_signals) == fwd_signals && !(mask & (1ull << (SIGSEGV - 1)));
}

/* Asks every thread of /proc/self/task not asked yet (but the caller) with
 * FWD_QUIET. Returns how many were asked, or -1 (more threads than we keep). */
static int fwd_quiet_ask(int self, int pid) {
    static u8 buf[4096];
    long fd = sys_openat(AT_FDCWD, "/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), got;
    int asked = 0;
    if (fd < 0) return -1;
    while ((got = SC3(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        long off = 0;
        while (off < got) {
            u8 *d = buf + off;
            const char *name = (const char *)d + 19; /* struct linux_dirent64: ino, off, reclen (u16), type, name */
            int tid = (int)nsb_atoi(name), i, n = LOAD(fwd_quiet_n), known = 0;
            off += *(u16 *)(d + 16);
            if (name[0] < '0' || name[0] > '9' || tid == self) continue;
            for (i = 0; i < n; i++) known |= LOAD(fwd_quiet_tids[i]) == tid;
            if (known) continue;
            if (n == FWD_MAX_THREADS) {
                sys_close((int)fd);
                return -1;
            }
            STORE(fwd_quiet_tids[n], tid);
            STORE(fwd_quiet_done[n], 0);
            STORE(fwd_quiet_n, n + 1);
            SC3(SYS_tgkill, pid, tid, FWD_QUIET); /* one that is gone already is seen below */
            asked++;
        }
    }
    sys_close((int)fd);
    return got < 0 ? -1 : asked;
}

/* Every other thread blocks the forwarded signals, before the caller (which has
 * blocked them) execs the shim: then none can be taken by a thread that execve
 * ends (zap_other_threads) after the kernel gave it the signal and before its
 * handler ran: one that comes stays pending, which survives execve. A thread made
 * by one that blocks them blocks them too: asked again until no new one shows up.
 * Returns 0, or -1 if a thread did not answer within 0.5 s (then no handoff). */
static int fwd_quiet(void) {
    struct timespec tick = {0, 20000}, now; /* 20 us: a woken thread answers within a few */
    int self = (int)SC0(SYS_gettid), pid = (int)sys_getpid(), i;
    i64 deadline;
    sys_clock_gettime(CLOCK_MONOTONIC, &now);
    deadline = now.tv_sec * 1000000000 + now.tv_nsec + 500000000;
    /* called with SA_SIGINFO's three arguments; none of the forwarded signals may
     * come in while the mask is changed */
    if (fwd_sigaction(FWD_QUIET, (void *)fwd_quiet_handler, fwd_signals, SA_SIGINFO | FWD_SA_RESTART, 0) != 0) return -1;
    STORE(fwd_quiet_n, 0);
    for (;;) {
        int asked = fwd_quiet_ask(self, pid), waiting = 1;
        if (asked < 0) return -1;
        if (asked == 0) return 0; /* all answered (or block them for good), and no new one */
        while (waiting) {
            int n = LOAD(fwd_quiet_n);
            waiting = 0;
            for (i = 0; i < n; i++) {
                int tid = LOAD(fwd_quiet_tids[i]);
                if (LOAD(fwd_quiet_done[i])) continue;
                if (SC3(SYS_tgkill, pid, tid, 0) == -ESRCH) STORE(fwd_quiet_done[i], 1); /* gone */
                else if (!fwd_blocks_for_good(tid)) waiting = 1;
            }
            if (waiting) {
                sys_clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec * 1000000000 + now.tv_nsec > deadline) return -1;
                SC2(SYS_nanosleep, &tick, 0);
            }
        }
    }
}

/* on: the calling thread, which has blocked the forwarded signals, execs the shim
 * next; from now on they are left pending for it. Returns whether a SIGHUP came
 * before (the shim's "h"), or -1: another thread could not be made to block them
 * (no handoff then: turn it off). off: no handoff (none tried, or the execve
 * failed): Bun waits, and its handlers take the signals again, as in a run that
 * never hands off (its listeners apply the -t rule, which these do not); then the
 * thread unblocks them, and what was left pending for the shim goes to them.
 * Returns whether a SIGHUP came meanwhile. */
static int fwd_handoff(int on) {
    int hup, s;
    if (!on) {
        for (s = 1; s < 64; s++)
            if (fwd_signals & (1ull << (s - 1))) sys_rt_sigaction(s, &fwd_before[s], 0);
        STORE(fwd_handoff_tid, 0);
        return LOAD(fwd_hup);
    }
    STORE(fwd_handoff_tid, (int)SC0(SYS_gettid));
    hup = LOAD(fwd_hup);
    if (fwd_quiet() < 0) return -1;
    return hup;
}
