/*
 * nsbox - host_calls.c: what nsbox (Bun) calls through nsb_call(), in its own
 * process: spawning W, the sync socket, netlink, terminals (part of the helper).
 */

static int nsb_read_full(int fd, u8 *buf, int len);
static int nsb_wait(int pid, i32 *status, int flags);

/* ---- rtnetlink: nsbox builds the messages (src/net/netlink.ts), this sends them ---- */

struct sockaddr_nl {
    u16 family, pad;
    u32 pid, groups;
};

/* Sends each netlink message of req (requests with NLM_F_ACK) and appends every
 * reply up to its ack (or NLMSG_DONE) to out. Returns the bytes in out or -errno. */
static long nl_exchange(const u8 *req, int reqlen, u8 *out, int outcap) {
    struct sockaddr_nl kernel;
    long fd = SC3(SYS_socket, 16 /* AF_NETLINK */, 3 /* SOCK_RAW */ | SOCK_CLOEXEC, 0 /* NETLINK_ROUTE */), r;
    int off = 0, used = 0;
    if (fd < 0) return fd;
    memset(&kernel, 0, sizeof kernel);
    kernel.family = 16;
    while (off + 16 <= reqlen) {
        u32 len, seq;
        int done = 0;
        memcpy(&len, req + off, 4);
        memcpy(&seq, req + off + 8, 4);
        if (len < 16 || off + (int)len > reqlen) break;
        r = nsb_syscall6(SYS_sendto, fd, (long)(req + off), len, 0, (long)&kernel, sizeof kernel);
        if (r < 0) {
            sys_close((int)fd);
            return r;
        }
        off += (int)((len + 3) & ~3u);
        while (!done) {
            static u8 buf[32768];
            int p = 0;
            r = sys_read((int)fd, buf, sizeof buf);
            if (r == -EINTR) continue;
            if (r <= 0) {
                sys_close((int)fd);
                return r < 0 ? r : -EIO;
            }
            while (p + 16 <= r) {
                u32 mlen, mseq;
                u16 type;
                memcpy(&mlen, buf + p, 4);
                memcpy(&type, buf + p + 4, 2);
                memcpy(&mseq, buf + p + 8, 4);
                if (mlen < 16 || p + (int)mlen > r) break;
                if (used + (int)mlen <= outcap) {
                    memcpy(out + used, buf + p, mlen);
                    used += (int)((mlen + 3) & ~3u);
                }
                if (mseq == seq && (type == 2 /* NLMSG_ERROR */ || type == 3 /* NLMSG_DONE */)) done = 1;
                p += (int)((mlen + 3) & ~3u);
            }
        }
    }
    sys_close((int)fd);
    return used;
}

/* The same, in another network namespace: a forked child joins it (nsbox never
 * changes its own namespaces) and pipes the replies back. */
static long nsb_netlink(int netnsfd, const u8 *req, int reqlen, u8 *out, int outcap) {
    int p[2], status;
    long pid, r, got = 0;
    u64 all = ~0ull, old;
    if (netnsfd < 0) return nl_exchange(req, reqlen, out, outcap);
    r = sys_pipe2(p, O_CLOEXEC);
    if (r < 0) return r;
    sys_rt_sigprocmask(SIG_SETMASK, &all, &old);
    pid = SC2(SYS_clone, SIGCHLD, 0);
    if (pid == 0) {
        long n;
        i32 hdr;
        nsb_reset_signals();
        sys_close(p[0]);
        r = SC2(SYS_setns, netnsfd, CLONE_NEWNET);
        n = r < 0 ? r : nl_exchange(req, reqlen, out, outcap);
        hdr = (i32)n;
        nsb_write_all(p[1], &hdr, 4);
        if (n > 0) nsb_write_all(p[1], out, (size_t)n);
        sys_exit(0);
    }
    sys_rt_sigprocmask(SIG_SETMASK, &old, NULL);
    sys_close(p[1]);
    if (pid < 0) {
        sys_close(p[0]);
        return pid;
    }
    {
        i32 hdr = 0;
        if (nsb_read_full(p[0], (u8 *)&hdr, 4) != 4) hdr = -EIO;
        if (hdr > 0) got = nsb_read_full(p[0], out, hdr);
        else got = hdr;
    }
    sys_close(p[0]);
    nsb_wait((int)pid, &status, 0);
    return got;
}

/* ---- what TypeScript calls ----
 * One entry point, nsb_call(fn, args), which JavaScript reaches as the addon's
 * call() (csrc/napi.c): the functions below are numbered, not exported one by
 * one. Keep the numbers in step with native/helper.ts. */

/*
 * Starts W (and through it C). out: [W's pid, status fd (reads C's pid as an i32,
 * or -errno), sync fd (nsbox's end of the socketpair)]. Returns 0 or -errno.
 *
 * W is not a fork of Bun: copying the page tables of Bun's ~40 MB cost 1.8 ms,
 * C's clone from that copy 0.9 ms more, and C's first execve 1 ms to tear its
 * copy down (perf trace, this kind of host). Instead a child that shares Bun's
 * memory (CLONE_VM|CLONE_VFORK, on a stack of its own, Bun's thread waiting)
 * execs the sealed shim as nsbox-spawn, which reads the two programs from a
 * memfd and runs W's (run_w, csrc/child_interp.c, built into the shim too): C
 * is cloned from a process of a few hundred kB. The child first makes every fd
 * inheritable: W and C see the fds a fork would have given them (the programs
 * name them by number; C makes all but its stdio close-on-exec before its own
 * execve, as before).
 */
struct spawn_args {
    int shimfd;
    int status;         /* W's end of the status pipe: a failed execve is reported there */
    int keep_closed[2]; /* nsbox's own ends of the socketpair and the pipe: never W's or C's */
    const char *argv[8];
};
static char spawn_stack[16384] __attribute__((aligned(16)));

static void spawn_inherit(struct spawn_args *a, int fd) {
    if (fd != a->keep_closed[0] && fd != a->keep_closed[1]) sys_fcntl(fd, F_SETFD, 0);
}

/* The vfork child: runs on spawn_stack in Bun's memory until its execve. */
static int spawn_child(void *arg) {
    struct spawn_args *a = arg;
    static u8 buf[2048];
    const char *envp[1] = {0};
    i32 err;
    long dir = sys_openat(AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), got;
    if (dir < 0) { /* no /proc: every fd number a process of nsbox's kind has in use */
        int fd;
        for (fd = 0; fd < 4096; fd++)
            if (sys_fcntl(fd, F_GETFD, 0) >= 0) spawn_inherit(a, fd);
        got = 0;
    }
    while (dir >= 0 && (got = SC3(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        long off = 0;
        while (off < got) {
            u8 *d = buf + off;
            const char *name = (const char *)d + 19; /* struct linux_dirent64 */
            off += *(u16 *)(d + 16);
            if (name[0] >= '0' && name[0] <= '9' && nsb_atoi(name) != dir) spawn_inherit(a, (int)nsb_atoi(name));
        }
    }
    if (dir >= 0) sys_close((int)dir);
    err = (i32)sys_execveat(a->shimfd, "", (char *const *)a->argv, (char *const *)envp, AT_EMPTY_PATH);
    nsb_write_all(a->status, &err, 4); /* read by nsbox as C's pid: -errno, the reason */
    return 125;
}

static int nsb_spawn(const u8 *w, int wlen, const u8 *cp, int clen, i32 *out, int shimfd) {
    static struct spawn_args a;
    static char nums[5][24];
    int sp[2], st[2];
    u64 all = ~0ull, old;
    long pid, r, mfd;
    if (wlen < 0 || clen < 0) return -EINVAL;
    mfd = SC2(SYS_memfd_create, "nsbox-programs", MFD_CLOEXEC);
    if (mfd < 0) return (int)mfd;
    if ((r = nsb_write_all((int)mfd, w, (size_t)wlen)) < 0 || (r = nsb_write_all((int)mfd, cp, (size_t)clen)) < 0) {
        sys_close((int)mfd);
        return (int)r;
    }
    r = SC4(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp);
    if (r < 0) {
        sys_close((int)mfd);
        return (int)r;
    }
    r = sys_pipe2(st, O_CLOEXEC);
    if (r < 0) {
        sys_close((int)mfd);
        sys_close(sp[0]);
        sys_close(sp[1]);
        return (int)r;
    }
    a.shimfd = shimfd;
    a.status = st[1];
    a.keep_closed[0] = sp[0];
    a.keep_closed[1] = st[0];
    a.argv[0] = "nsbox-spawn";
    a.argv[1] = nsb_itoa(mfd, nums[0]);
    a.argv[2] = nsb_itoa(wlen, nums[1]);
    a.argv[3] = nsb_itoa(clen, nums[2]);
    a.argv[4] = nsb_itoa(sp[1], nums[3]);
    a.argv[5] = nsb_itoa(st[1], nums[4]);
    a.argv[6] = 0;
    /* No signal may run a Bun handler in the child: all blocked across the clone
     * (the mask survives execve; run_w resets every handler, then unblocks). */
    sys_rt_sigprocmask(SIG_SETMASK, &all, &old);
    pid = nsb_clone_run(CLONE_VM | CLONE_VFORK | SIGCHLD, spawn_stack + sizeof spawn_stack, spawn_child, &a);
    sys_rt_sigprocmask(SIG_SETMASK, &old, NULL);
    sys_close((int)mfd);
    sys_close(sp[1]);
    sys_close(st[1]);
    if (pid < 0) {
        sys_close(sp[0]);
        sys_close(st[0]);
        return (int)pid;
    }
    out[0] = (i32)pid;
    out[1] = st[0];
    out[2] = sp[0];
    return 0;
}

/* A detached copy of the tree at path, idmapped through the user namespace
 * usernsfd: the container's root sees a root-owned rootfs as its own, with no
 * chown of the files (Linux 5.12+; overlay accepts it as a lower layer from 5.19).
 * how: IDMAP_TREE_REC copies the mounts below path too (rbind), IDMAP_REC
 * idmaps them too (OCI "ridmap"; "idmap" maps the top one only, as runc and
 * crun), ATTR_REC applies attrs (MOUNT_ATTR_RDONLY...: an OCI bind's "ro") to
 * them too. Done on the detached tree, before it is attached anywhere. */
#define IDMAP_TREE_REC 1
#define IDMAP_REC 2
#define IDMAP_ATTR_REC 4
static int nsb_idmap_tree(const char *path, int usernsfd, int how, u32 attrs) {
    struct mount_attr a;
    long fd = SC3(SYS_open_tree, AT_FDCWD, path,
                  1 /* OPEN_TREE_CLONE */ | O_CLOEXEC | 0x800 /* AT_NO_AUTOMOUNT */ | ((how & IDMAP_TREE_REC) ? 0x8000 /* AT_RECURSIVE */ : 0)),
         r;
    if (fd < 0) return (int)fd;
    memset(&a, 0, sizeof a);
    a.attr_set = 0x00100000; /* MOUNT_ATTR_IDMAP */
    a.userns_fd = (u64)usernsfd;
    r = nsb_syscall6(SYS_mount_setattr, fd, (long)"", AT_EMPTY_PATH | ((how & IDMAP_REC) ? 0x8000 : 0), (long)&a, sizeof a, 0);
    if (r >= 0 && attrs) {
        memset(&a, 0, sizeof a);
        a.attr_set = attrs;
        r = nsb_syscall6(SYS_mount_setattr, fd, (long)"", AT_EMPTY_PATH | ((how & IDMAP_ATTR_REC) ? 0x8000 : 0), (long)&a, sizeof a, 0);
    }
    if (r < 0) {
        sys_close((int)fd);
        return (int)r;
    }
    return (int)fd;
}

/* A process in a new user namespace that only waits to be killed: its
 * /proc/PID/ns/user, once nsbox has written the maps, is what an OCI idmapped
 * mount's mount_setattr needs (a user namespace exists only with a process in
 * it; crun and runc make one the same way). Returns its pid or -errno. */
static int nsb_userns_holder(void) {
    u64 all = ~0ull, old;
    long pid;
    sys_rt_sigprocmask(SIG_SETMASK, &all, &old);
    pid = SC2(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0);
    if (pid == 0) {
        /* every signal blocked: only SIGKILL ends it (or nsbox's death) */
        sys_prctl(PR_SET_PDEATHSIG, 9 /* SIGKILL */, 0);
        for (;;) SC2(SYS_rt_sigsuspend, &all, 8);
    }
    sys_rt_sigprocmask(SIG_SETMASK, &old, NULL);
    return (int)pid;
}

/* Reads exactly len bytes (blocking); returns len, fewer at end-of-file, or -errno. */
static int nsb_read_full(int fd, u8 *buf, int len) {
    int got = 0;
    while (got < len) {
        long r = sys_read(fd, buf + got, (size_t)(len - got));
        if (r == -EINTR) continue;
        if (r < 0) return (int)r;
        if (r == 0) break;
        got += (int)r;
    }
    return got;
}

/* wait4; returns the pid, 0 (WNOHANG, still running) or -errno. */
static int nsb_wait(int pid, i32 *status, int flags) {
    long r;
    do r = sys_wait4(pid, status, flags);
    while (r == -EINTR);
    return (int)r;
}

/* Window size of a terminal: get (set = 0) into ws[0..1] = rows, cols, or set. */
static int nsb_winsize(int fd, int set, u16 *ws) {
    struct winsize w;
    long r;
    memset(&w, 0, sizeof w);
    if (set) {
        w.ws_row = ws[0];
        w.ws_col = ws[1];
        return (int)sys_ioctl(fd, TIOCSWINSZ, (long)&w);
    }
    r = sys_ioctl(fd, TIOCGWINSZ, (long)&w);
    ws[0] = w.ws_row;
    ws[1] = w.ws_col;
    return (int)r;
}

/* Terminal modes (the kernel's struct termios, as TCGETS/TCSETS take it).
 * op 0: save into t; op 1: set from t; op 2: save into t, then make the terminal
 * raw as cfmakeraw does (no echo, no line editing, no signals, no output
 * processing: the container's own terminal does all that). */
static int nsb_termios(int fd, int op, struct k_termios *t) {
    if (op == 1) return (int)sys_ioctl(fd, 0x5402 /* TCSETS */, (long)t);
    if (op == 0) return (int)sys_ioctl(fd, 0x5401 /* TCGETS */, (long)t);
    return (int)nsb_make_raw(fd, t);
}

static int nsb_flock(int fd, int op) {
    long r;
    do r = SC2(SYS_flock, fd, op);
    while (r == -EINTR && !(op & 4 /* LOCK_NB */));
    return (int)r;
}

/* A stream socket connected to the Unix socket at path (len bytes, no NUL). */
static int nsb_connect_unix(const char *path, int len) {
    u8 addr[110];
    long fd, r;
    if (len <= 0 || len > 107) return -EINVAL;
    memset(addr, 0, sizeof addr);
    addr[0] = AF_UNIX; /* sa_family, little-endian u16 on both architectures */
    memcpy(addr + 2, path, (size_t)len);
    fd = SC3(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return (int)fd;
    do r = SC3(SYS_connect, fd, addr, 2 + len + 1);
    while (r == -EINTR);
    if (r < 0) {
        sys_close((int)fd);
        return (int)r;
    }
    return (int)fd;
}


/* Plain system calls (close, pipe2, mount, bpf, prlimit64...) are made by nsbox
 * itself (src/native/syscall.ts); the numbers they had here are not reused. */
enum {
    F_SPAWN = 1,
    F_RECV = 2,
    F_SEND = 3,
    F_READ_FULL = 4,
    F_WAIT = 5,
    F_WINSIZE = 6,
    F_IDMAP_TREE = 12,
    F_NETLINK = 17,
    F_TERMIOS = 18,
    F_USERNS_HOLDER = 20,
    F_FWD_INSTALL = 21, /* sigs: C handlers take these signals (fg_forward.c) */
    F_FWD_HANDOFF = 22, /* on: left pending for the shim from now on, off: Bun's handlers again; returns whether a SIGHUP came */
    F_FWD_TARGET = 23,  /* pid: where they go from now on (-1: nowhere) */
    /* what nsbox once bound from libc (each binding costs a start ~0.15 ms) */
    F_FLOCK = 24,       /* fd op: a blocking one is retried after a signal */
    F_SIGMASK = 26,     /* how sigs: the calling thread's mask (SIG_BLOCK 0, SIG_UNBLOCK 1; bit N-1 = signal N) */
    F_EXECVEAT = 27,    /* fd argv envp: execve of the program in fd; returns only on failure */
    /* the OCI verbs' (src/native/ocisys.ts): --console-socket */
    F_CONNECT_UNIX = 30, /* path len: a connected AF_UNIX stream socket (close-on-exec), or -errno */
    /* write_away.c: cgroup.procs written by a child, off nsbox's thread */
    F_AWAY_START = 32,  /* path plen text len: returns the child's pid */
    F_AWAY_DONE = 33,   /* pid nowait: -1 under way, else the write's errno (0: written) */
    /* exit_teardown.c: nsbox's memory freed after its exit */
    F_EXIT_KEEPER = 34, /* (paths, len): the keeper's pid, or -errno */
};

static int nsb_call(int fn, const i64 *a) {
    switch (fn) {
    case F_SPAWN: return nsb_spawn((const u8 *)a[0], (int)a[1], (const u8 *)a[2], (int)a[3], (i32 *)a[4], (int)a[5]);
    case F_RECV: return nsb_recv((int)a[0], (u8 *)a[1], (int)a[2], (i32 *)a[3]);
    case F_SEND: return nsb_send((int)a[0], (const u8 *)a[1], (int)a[2], (int)a[3]);
    case F_IDMAP_TREE: return nsb_idmap_tree((const char *)a[0], (int)a[1], (int)a[2], (u32)a[3]);
    case F_USERNS_HOLDER: return nsb_userns_holder();
    case F_FWD_INSTALL: return fwd_install((u64)a[0]);
    case F_FLOCK: return nsb_flock((int)a[0], (int)a[1]);
    case F_SIGMASK: return (int)sys_rt_sigprocmask((int)a[0], (const u64 *)&a[1], NULL);
    case F_CONNECT_UNIX: return nsb_connect_unix((const char *)a[0], (int)a[1]);
    case F_AWAY_START: return nsb_away_start((const char *)a[0], (int)a[1], (const char *)a[2], (int)a[3]);
    case F_AWAY_DONE: return nsb_away_done((int)a[0], (int)a[1]);
    case F_EXIT_KEEPER: return nsb_exit_keeper((const char *)a[0], (long)a[1]);
    case F_EXECVEAT: return (int)SC5(SYS_execveat, a[0], "", a[1], a[2], 0x1000 /* AT_EMPTY_PATH */);
    case F_FWD_HANDOFF: return fwd_handoff((int)a[0]);
    case F_FWD_TARGET: return fwd_set_target((int)a[0]);
    case F_TERMIOS: return nsb_termios((int)a[0], (int)a[1], (struct k_termios *)a[2]);
    case F_NETLINK: return (int)nsb_netlink((int)a[0], (const u8 *)a[1], (int)a[2], (u8 *)a[3], (int)a[4]);
    case F_READ_FULL: return nsb_read_full((int)a[0], (u8 *)a[1], (int)a[2]);
    case F_WAIT: return nsb_wait((int)a[0], (i32 *)a[1], (int)a[2]);
    case F_WINSIZE: return nsb_winsize((int)a[0], (int)a[1], (u16 *)a[2]);
    }
    return -ENOSYS;
}
