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
    if (sig == SIGHUP) STORE(fwd_hup, 1); /* the shim applies the -t rule (see shim_fg.c) */
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
