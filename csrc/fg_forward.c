/*
 * nsbox - fg_forward.c: signal handlers that forward to the container, for the
 * moment a foreground `nsbox run` hands its wait to the shim (part of the helper;
 * see src/native/handoff.ts and csrc/shim_fg.c).
 *
 * Bun's own handlers queue a signal for JavaScript, on whichever thread the
 * kernel picked; one queued just before execve would be lost with the process
 * image. These forward at once, in the handler, on any thread: kill(2) is
 * async-signal-safe. libc's sigaction comes in as a pointer: it sets the x86_64
 * restorer that a raw rt_sigaction would need from us.
 */
typedef int (*sigaction_fn)(int, const void *, void *);

/* glibc's struct sigaction on x86_64 and arm64 */
struct fwd_sigaction {
    void (*handler)(int);
    unsigned long mask[16];
    int flags;
    void (*restorer)(void);
};

static volatile int fwd_target, fwd_hup;

static void fwd_handler(int sig) {
    if (sig == SIGHUP) fwd_hup = 1; /* the shim applies the -t rule (see shim_fg.c) */
    if (fwd_target > 0) sys_kill(fwd_target, sig);
}

/* From now on the signals in sigs (bit N-1 for signal N) go to pid; pid 0: nowhere
 * (the container is gone). Returns 0, or -N when signal N could not be taken. */
static int fwd_install(int pid, u64 sigs, void *sigaction) {
    struct fwd_sigaction a;
    int s, i;
    fwd_target = pid;
    a.handler = fwd_handler;
    for (i = 0; i < 16; i++) a.mask[i] = 0;
    a.flags = 0x10000000; /* SA_RESTART: Bun's threads see no EINTR */
    a.restorer = 0;
    for (s = 1; s < 64; s++)
        if (sigs & (1ull << (s - 1)))
            if (((sigaction_fn)sigaction)(s, &a, 0) != 0) return -s;
    return 0;
}
