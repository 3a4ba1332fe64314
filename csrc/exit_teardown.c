/*
 * nsbox - exit_teardown.c: nsbox's memory released after nsbox has exited, by a
 * process that shares it (part of the helper; src/native/exit.ts).
 *
 * Why: a process's exit frees its address space before its parent learns of the
 * exit, and for Bun's ~30 MB that takes 2-3 ms here (0.08 ms per MB touched,
 * measured with a C program: exit_group -> the parent's waitpid 2.1-2.9 ms for
 * 30 MB, 0.5-0.7 ms for 5 MB), almost none of it CPU time the guest sees. When
 * another process still holds the address space (a CLONE_VM child), the exit
 * only drops a reference: the parent gets nsbox's status at once, and the child,
 * killed by the parent-death signal, frees the memory as it exits itself.
 *
 * The child (the "keeper") first closes its copy of nsbox's fd table (no pipe's
 * end, lock or socket of nsbox stays open a moment longer: a reader of nsbox's
 * output gets its end-of-file when nsbox exits), moves to "/" (it pins no
 * directory) and names itself nsbox-exit; then it asks for SIGKILL at its
 * parent's death and says it is ready. Every signal stays blocked in it, so
 * nothing but that SIGKILL ends it. Once nsbox has exited it is an orphan: its
 * reaper (init, or the nearest subreaper) collects it like any exited child.
 * While it frees the memory its /proc entry shows no command line (the address
 * space is already detached from it then) and no directory of nsbox's.
 */

#define KEEPER_STACK 1024
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

static char keeper_stack[KEEPER_STACK] __attribute__((aligned(16)));
static int keeper_ready;

static int keeper_child(void *parent) {
    SC3(SYS_close_range, 0, ~0u, 0);
    SC1(SYS_chdir, "/");
    sys_prctl(PR_SET_NAME, (long)"nsbox-exit", 0);
    sys_prctl(PR_SET_PDEATHSIG, SIGKILL, 0);
    if (sys_getppid() != (long)parent) return 0; /* nsbox is gone already */
    __atomic_store_n(&keeper_ready, 1, __ATOMIC_SEQ_CST);
    SC3(SYS_futex, &keeper_ready, FUTEX_WAKE_PRIVATE, 1);
    for (;;) SC4(SYS_ppoll, 0, 0, 0, 0); /* until the SIGKILL */
    return 0;
}

/* Starts the keeper and waits (at most 20 ms) until it holds no fd and will die
 * with nsbox. Returns its pid, or -errno (then nsbox exits as any process does).
 * Call it last, right before the exit: from then on the keeper holds the memory. */
static int nsb_exit_keeper(void) {
    struct timespec wait = {0, 20000000};
    u64 all = ~0ull, old;
    long pid;
    if (__atomic_load_n(&keeper_ready, __ATOMIC_SEQ_CST)) return -EEXIST;
    /* no Bun handler may run on the keeper's stack: it is born with every signal blocked */
    sys_rt_sigprocmask(SIG_SETMASK, &all, &old);
    pid = nsb_clone_run(CLONE_VM, keeper_stack + sizeof keeper_stack, keeper_child, (void *)sys_getpid());
    sys_rt_sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) return (int)pid;
    while (!__atomic_load_n(&keeper_ready, __ATOMIC_SEQ_CST)) {
        long r = SC4(SYS_futex, &keeper_ready, FUTEX_WAIT_PRIVATE, 0, &wait);
        if (r == -ETIMEDOUT) break; /* a machine too busy to run it: exit anyway */
    }
    return (int)pid;
}
