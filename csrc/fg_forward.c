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
 * libc's sigaction comes in as a pointer: it sets the x86_64 restorer that a
 * raw rt_sigaction would need from us.
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
typedef int (*sigaction_fn)(int, const void *, void *);

/* glibc's struct sigaction on x86_64 and arm64 */
struct fwd_sigaction {
    void (*handler)(int);
    unsigned long mask[16];
    int flags;
    void (*restorer)(void);
};

/* the container's pid: 0 not known yet (signals are noted), -1 gone (nothing sent) */
static int fwd_target;
static int fwd_hup;
/* 0, or the thread that execs the shim (signals go on to it: see fwd_handoff) */
static int fwd_handoff_tid;
static int fwd_pending[65];

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)

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
static int fwd_install(u64 sigs, void *sigaction) {
    struct fwd_sigaction a;
    int s, i;
    a.handler = fwd_handler;
    for (i = 0; i < 16; i++) a.mask[i] = 0;
    a.flags = 0x10000000; /* SA_RESTART: Bun's threads see no EINTR */
    a.restorer = 0;
    for (s = 1; s < 64; s++)
        if (sigs & (1ull << (s - 1)))
            if (((sigaction_fn)sigaction)(s, &a, 0) != 0) return -s;
    return 0;
}

/* The container's pid (what was noted before goes to it now), or -1: it is gone. */
static int fwd_set_target(int pid) {
    STORE(fwd_target, pid);
    fwd_flush();
    return 0;
}

/* on: the calling thread, which has blocked the forwarded signals, execs the shim
 * next; from now on they are left pending for it. Returns whether a SIGHUP came
 * before (the shim's "h"). off: the execve failed, the handlers forward again
 * (then the thread unblocks, and what was left pending for the shim comes here). */
static int fwd_handoff(int on) {
    STORE(fwd_handoff_tid, on ? (int)SC0(SYS_gettid) : 0);
    return LOAD(fwd_hup);
}
