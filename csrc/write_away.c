/*
 * nsbox - write_away.c: a small write done by another process, so that nsbox's
 * thread does not wait for it (part of the helper; src/native/away.ts).
 *
 * For the cgroup move's warm-up and joins (src/cgroup/warm.ts): a write to
 * cgroup.procs may first wait for an RCU grace period (2-16 ms here). nsbox used
 * node:fs's asynchronous writeFile for them, on Bun's thread pool; without node:fs
 * (see src/native/fs.ts), a child that shares nsbox's memory (CLONE_VM: no copy
 * of Bun's page tables) opens, writes and exits, on its own small stack.
 *
 * The child has no exit signal (a __WCLONE child): no SIGCHLD reaches Bun, and no
 * wait of Bun's for its own children can reap it. Every signal is blocked across
 * the clone, so none runs a Bun handler on the child's stack; it never unblocks.
 * Its exit code is the errno of a failed open or write (0: written). Its fd
 * table is its own copy (no CLONE_FILES): the fd it opens is never one of Bun's,
 * which a spawn running meanwhile could pass on.
 */

#define AWAY_SLOTS 4
#define AWAY_PATH 512
#define AWAY_TEXT 64
#define AWAY_STACK 2048
#define WCLONE 0x80000000

static struct away {
    int pid; /* 0: free */
    int len;
    char path[AWAY_PATH];
    char text[AWAY_TEXT];
    char stack[AWAY_STACK] __attribute__((aligned(16)));
} aways[AWAY_SLOTS];

long nsb_clone_run(long flags, void *stack_top, int (*fn)(void *), void *arg); /* arch_<arch>.c */

static int away_child(void *arg) {
    struct away *w = arg;
    long fd = sys_openat(AT_FDCWD, w->path, O_WRONLY | O_CLOEXEC, 0), r;
    if (fd < 0) return (int)-fd;
    do r = sys_write((int)fd, w->text, (size_t)w->len);
    while (r == -EINTR);
    sys_close((int)fd);
    return r < 0 ? (int)-r : r == w->len ? 0 : EIO;
}

/* Starts the write of text (len bytes) to path; returns the child's pid, -EBUSY
 * when every slot is in use (the caller writes itself), or -errno. */
static int nsb_away_start(const char *path, int plen, const char *text, int len) {
    u64 all = ~0ull, old;
    struct away *w = 0;
    long pid;
    int i;
    if (plen <= 0 || plen >= AWAY_PATH || len <= 0 || len > AWAY_TEXT) return -EINVAL;
    for (i = 0; i < AWAY_SLOTS && !w; i++)
        if (!aways[i].pid) w = &aways[i];
    if (!w) return -EBUSY;
    memcpy(w->path, path, (size_t)plen);
    w->path[plen] = 0;
    memcpy(w->text, text, (size_t)len);
    w->len = len;
    sys_rt_sigprocmask(SIG_SETMASK, &all, &old);
    pid = nsb_clone_run(CLONE_VM, w->stack + sizeof w->stack, away_child, w);
    sys_rt_sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) return (int)pid;
    w->pid = (int)pid;
    return (int)pid;
}

/* The result of write pid: -1 still under way (nowait), else its errno (0: written);
 * the slot is free again. -ECHILD: no such write. */
static int nsb_away_done(int pid, int nowait) {
    int status = 0, i;
    long r;
    for (i = 0; i < AWAY_SLOTS; i++)
        if (pid > 0 && aways[i].pid == pid) break;
    if (i == AWAY_SLOTS) return -ECHILD;
    do r = sys_wait4(pid, &status, WCLONE | (nowait ? WNOHANG : 0));
    while (r == -EINTR);
    if (r == 0) return -1;
    aways[i].pid = 0;
    if (r < 0) return (int)r;
    return (status & 0x7f) ? EINTR : (status >> 8) & 0xff;
}
