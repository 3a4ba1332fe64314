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
 *
 * It may also be given directories to remove once nsbox has exited: a foreground
 * container's layers and state, already renamed to .rm-<id> (out of every
 * reader's view; src/native/exit.ts). On this machine's ext4 an rmdir costs
 * 0.19-0.23 ms, and a run's seven came to ~2 ms of nsbox's cleanup. Then its
 * parent-death signal is SIGUSR1, which it waits for (blocked, as every signal);
 * it removes the trees and exits. What it cannot remove, or leaves because it was
 * killed (systemd ending a unit's cgroup), is a .rm-* that the next reconcile
 * removes (src/container/lifecycle.ts).
 */

#define KEEPER_STACK 16384 /* keeper_rm: ~100 bytes a level */
#define KEEPER_PATHS 4096
#define KEEPER_DEPTH 64 /* deeper trees are left to the reconcile, whose rm has no such bound */
#define FUTEX_WAIT_PRIVATE 128
#define FUTEX_WAKE_PRIVATE 129

static char keeper_stack[KEEPER_STACK] __attribute__((aligned(16)));
static int keeper_ready;
/* absolute paths, each NUL-terminated, an empty one last: copied here, so nothing of Bun's is read after its exit */
static char keeper_paths[KEEPER_PATHS];

/* Removes name (in dfd) and everything below it; 0, or -errno of the first thing
 * it could not remove (it goes on with the rest: the reconcile has less left). One getdents buffer serves every level, and a level keeps
 * only the name of the subdirectory it descends into (names[depth]) and where its
 * listing goes on (d_off, the position after that entry: seekable on every
 * filesystem that has telldir), so neither the stack nor the time grows with a
 * directory's size. Below KEEPER_DEPTH levels it gives up (-ELOOP). */
static u8 keeper_dents[4096];
static char keeper_names[KEEPER_DEPTH][256];

static int keeper_rm(int dfd, const char *name, int depth) {
    long r = depth ? -EISDIR : sys_unlinkat(dfd, name, 0), fd, got, err = 0; /* below the top: called for a directory */
    if (r == 0 || r == -ENOENT) return 0;
    if (r != -EISDIR) return (int)r;
    r = sys_unlinkat(dfd, name, AT_REMOVEDIR);
    if (r == 0 || r == -ENOENT) return 0;
    if (r != -ENOTEMPTY) return (int)r;
    if (depth >= KEEPER_DEPTH) return -ELOOP;
    fd = sys_openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0) return fd == -ENOENT ? 0 : (int)fd;
again:
    while ((got = SC3(SYS_getdents64, fd, keeper_dents, sizeof keeper_dents)) > 0) {
        long off = 0;
        while (off < got) {
            u8 *d = keeper_dents + off;
            const char *n = (const char *)d + 19; /* struct linux_dirent64: ino, off, reclen (u16), type, name */
            i64 next = *(i64 *)(d + 8);
            size_t l = 0;
            off += *(u16 *)(d + 16);
            if (n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0))) continue;
            r = sys_unlinkat((int)fd, n, 0);
            if (r == 0 || r == -ENOENT) continue;
            if (r != -EISDIR || nsb_append(keeper_names[depth], sizeof keeper_names[depth], &l, n) < 0) {
                if (!err) err = r == -EISDIR ? -ENAMETOOLONG : r; /* a name is at most 255 bytes */
                continue;
            }
            r = keeper_rm((int)fd, keeper_names[depth], depth + 1);
            if (r < 0 && !err) err = r;
            /* the buffer now holds what the level below read: go on after this entry */
            if ((r = SC3(SYS_lseek, fd, next, 0 /* SEEK_SET */)) < 0) break;
            goto again;
        }
    }
    if (got < 0 || r < 0) err = err ? err : (got < 0 ? got : r);
    sys_close((int)fd);
    if (err) return (int)err;
    r = sys_unlinkat(dfd, name, AT_REMOVEDIR);
    return r == -ENOENT ? 0 : (int)r;
}

static int keeper_child(void *parent) {
    int work = keeper_paths[0] != 0;
    SC3(SYS_close_range, 0, ~0u, 0);
    SC1(SYS_chdir, "/");
    sys_prctl(PR_SET_NAME, (long)"nsbox-exit", 0);
    sys_prctl(PR_SET_PDEATHSIG, work ? SIGUSR1 : SIGKILL, 0);
    if (sys_getppid() == (long)parent) {
        __atomic_store_n(&keeper_ready, 1, __ATOMIC_SEQ_CST);
        SC3(SYS_futex, &keeper_ready, FUTEX_WAKE_PRIVATE, 1);
        if (!work)
            for (;;) SC4(SYS_ppoll, 0, 0, 0, 0); /* until the SIGKILL */
        u64 usr1 = 1ull << (SIGUSR1 - 1);
        while (SC4(SYS_rt_sigtimedwait, &usr1, 0, 0, 8) != SIGUSR1) {
        }
    } /* else nsbox is gone already */
    for (const char *p = keeper_paths; *p; p += nsb_strlen(p) + 1) keeper_rm(AT_FDCWD, p, 0);
    return 0;
}

/* Starts the keeper and waits (at most 20 ms) until it holds no fd and will
 * outlive nsbox only as long as the removal of paths takes (none: not at all).
 * paths: len bytes of NUL-terminated absolute paths. Returns its pid, or -errno
 * (then nsbox exits as any process does, and removes the paths itself first).
 * Call it last, right before the exit: from then on the keeper holds the memory. */
static int nsb_exit_keeper(const char *paths, long len) {
    struct timespec wait = {0, 20000000};
    u64 all = ~0ull, old;
    long pid;
    if (__atomic_load_n(&keeper_ready, __ATOMIC_SEQ_CST)) return -EEXIST;
    if (len < 0 || len > KEEPER_PATHS - 1 || (len > 0 && paths[len - 1] != 0)) return -EINVAL;
    memcpy(keeper_paths, paths, (size_t)len);
    keeper_paths[len] = 0;
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
