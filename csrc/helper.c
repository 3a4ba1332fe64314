/*
 * nsbox - helper.c: the native half of nsbox, compiled at run time by bun:ffi's cc
 * (TinyCC), after arch_<arch>.c and lib.c.
 *
 * Bun is multithreaded, so nsbox never unshares or setns'es its own process. This
 * file creates the container's processes and runs, in them, a small program that
 * the TypeScript side encoded (src/native/program.ts): which namespaces to join
 * or create, what to mount where, which identity to take, what to exec. TS decides
 * the policy; C only carries it out with raw syscalls, between clone and execve,
 * where no libc, no malloc and no JavaScript may run.
 *
 * Processes (as in runc's nsexec and crun):
 *
 *   nsbox (Bun) --fork--> W --clone(CLONE_NEW*)--> C --execve--> the command
 *
 * W joins namespaces that only take effect for children (a pod's pid namespace),
 * clones C, reports C's pid, then either exits (foreground: nsbox is a subreaper,
 * so C becomes its child) or execs the tiny monitor shim (detached containers).
 * C talks to nsbox over a SOCK_SEQPACKET socketpair: READY after its namespaces
 * exist (nsbox then writes uid maps, joins the cgroup, plugs in the network),
 * GO back, then mounts, pivot_root, identity and execve. Any failure reaches nsbox
 * as {op index, errno}, which TS turns into a sentence; the socket is close-on-exec,
 * so end-of-file means the execve succeeded.
 */

/* ---- the program encoding; keep in step with src/native/program.ts ---- */

enum {
    /* W ops */
    W_SETNS = 1,   /* fd nstype */
    W_CLONE = 2,   /* flags: clone C, which runs the C program */
    W_EXIT = 3,    /* foreground: leave C to nsbox */
    W_EXEC = 4,    /* fd keep[] argv[] envp[]: become the monitor shim, keep[k] as fd k */
    W_SETSID = 5,  /* detach from nsbox's session and terminal */
    /* C ops */
    C_SETNS = 20,      /* fd nstype */
    C_UNSHARE = 21,    /* flags */
    C_SYNC = 22,       /* READY to nsbox; wait for GO unless the flag says later */
    C_PDEATHSIG = 23,  /* sig: die with nsbox (checked after setting it) */
    C_SETID = 24,      /* uid gid ngroups(-1: leave) groups[] */
    C_MOUNT = 25,      /* src dst fstype flags data mk inroot */
    C_ROOT = 26,       /* path: the new root, for resolving in-root paths */
    C_MKNOD = 27,      /* path mode major minor */
    C_SYMLINK = 28,    /* target path */
    C_PIVOT = 29,      /* pivot_root into the root, detach the old one */
    C_HOSTNAME = 30,   /* name */
    C_TTY = 31,        /* rows cols: pty from the container's devpts, master to nsbox */
    C_STDIO = 32,      /* fd0 fd1 fd2 (-1: keep) */
    C_CHDIR = 33,      /* path */
    C_EXEC = 34,       /* flags initfd name argv[] envp[]: name looked up in PATH */
    C_SETSID = 35,     /* new session (no tty: blocks TIOCSTI into nsbox's terminal) */
    C_MKDIR = 36,      /* path mode (in root) */
    C_REMOUNT = 37,    /* path flags: after pivot, e.g. a read-only root */
    C_PRCTL = 38,      /* option arg: no_new_privs, dumpable... */
    C_ATTACH = 39,     /* dst: move the mount nsbox sent with GO to dst */
    C_IFUP = 40,       /* name: bring a network interface up (lo of a new netns) */
};

/* Messages on the sync socket. */
enum { MSG_READY = 1, MSG_ERROR = 2, MSG_PTY = 3, MSG_GO = 10 };
struct nsb_msg {
    u32 type;
    u32 op;   /* index of the failing op */
    i32 err;  /* errno */
};

#define EXEC_INIT 2   /* exec the init shim (initfd), which runs the command */
#define EXEC_FD 4     /* exec initfd itself with argv as given (a pod's pause) */
#define MK_NONE 0
#define MK_DIR 1
#define MK_FILE 2

struct cur {
    const u8 *p, *end;
    int bad;
};
static u32 rd_u32(struct cur *c) {
    u32 v;
    if (c->p + 4 > c->end) {
        c->bad = 1;
        return 0;
    }
    memcpy(&v, c->p, 4);
    c->p += 4;
    return v;
}
static const char *rd_str(struct cur *c) {
    u32 n = rd_u32(c);
    const char *s = (const char *)c->p;
    u32 padded = (n + 1 + 3) & ~3u;
    if (c->bad || c->p + padded > c->end) {
        c->bad = 1;
        return "";
    }
    c->p += padded;
    return s;
}
/* A string array: its count, then the strings. Fills v (max-1 entries, NULL ended). */
static int rd_strv(struct cur *c, const char **v, int max) {
    u32 n = rd_u32(c), i;
    if (n >= (u32)max) {
        c->bad = 1;
        return -E2BIG;
    }
    for (i = 0; i < n; i++) v[i] = rd_str(c);
    v[n] = NULL;
    return (int)n;
}

static int nsb_recv(int sock, u8 *buf, int len, i32 *fd);
static int nsb_send(int sock, const u8 *buf, int len, int fd);

/* ---- state of C ---- */
static int c_sync = -1;    /* our end of the socketpair */
static int c_root = -1;    /* O_PATH fd of the new root before pivot_root */
static u32 c_op;           /* index of the op being run, for error reports */
static i32 c_passed = -1;  /* an fd nsbox sent with GO (see C_ATTACH) */

static void c_send(u32 type, i32 err) {
    struct nsb_msg m;
    m.type = type;
    m.op = c_op;
    m.err = err;
    nsb_send(c_sync, (const u8 *)&m, sizeof m, -1);
}
static void c_fail(long err) {
    c_send(MSG_ERROR, (i32)(err < 0 ? -err : err));
    sys_exit(125);
}
#define CHECK(expr)                 \
    do {                            \
        long r_ = (long)(expr);     \
        if (r_ < 0) c_fail(r_);     \
    } while (0)

static long c_openat2(int dfd, const char *path, u64 flags, u64 resolve) {
    struct open_how how;
    how.flags = flags;
    how.mode = 0;
    how.resolve = resolve;
    return SC4(SYS_openat2, dfd, path, &how, sizeof how);
}
#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

/* Opens (O_PATH) the directory that holds the last component of path, resolved
 * inside the new root, creating missing directories on the way; *last is the
 * last component. Each directory is made with mkdirat() relative to its parent's
 * fd, itself opened with RESOLVE_IN_ROOT: no symlink in the rootfs can steer a
 * mkdir onto the host (as a plain mkdir("/rootfs/dev/...") could). */
static long c_parent_in_root(const char *path, char *buf, const char **last) {
    size_t n = nsb_strlen(path), i, slash = 0, comp = 1;
    long pfd, fd, r;
    if (n >= 4096) return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0; /* "a/b/" is "a/b" */
    for (i = 0; i < n; i++)
        if (buf[i] == '/') slash = i;
    *last = buf + slash + 1;
    pfd = sys_fcntl(c_root, 1030 /* F_DUPFD_CLOEXEC */, 0);
    if (pfd < 0 || slash == 0) return pfd;
    buf[slash] = 0;
    for (i = 1; i <= slash; i++) {
        char save;
        if (buf[i] != '/' && buf[i] != 0) continue;
        save = buf[i];
        buf[i] = 0;
        fd = c_openat2(c_root, buf, O_PATH | O_CLOEXEC | O_DIRECTORY, IN_ROOT);
        if (fd == -ENOENT) {
            r = sys_mkdirat((int)pfd, buf + comp, 0755);
            fd = (r < 0 && r != -EEXIST) ? r : c_openat2(c_root, buf, O_PATH | O_CLOEXEC | O_DIRECTORY, IN_ROOT);
        }
        buf[i] = save;
        sys_close((int)pfd);
        if (fd < 0) return fd;
        pfd = fd;
        comp = i + 1;
    }
    return pfd;
}

/* Opens path inside the new root (O_PATH), creating it as a directory or an empty
 * file when mk says so. Symlinks are followed but never leave the root. */
static long c_open_in_root(const char *path, int mk) {
    char buf[4096];
    const char *last;
    long fd = c_openat2(c_root, path, O_PATH | O_CLOEXEC, IN_ROOT), dfd, r;
    if (fd != -ENOENT || mk == MK_NONE) return fd;
    dfd = c_parent_in_root(path, buf, &last);
    if (dfd < 0) return dfd;
    if (mk == MK_DIR) {
        r = sys_mkdirat((int)dfd, last, 0755);
    } else {
        /* O_EXCL: never follow a dangling symlink out of the root. */
        r = sys_openat((int)dfd, last, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (r >= 0) sys_close((int)r);
    }
    sys_close((int)dfd);
    if (r < 0 && r != -EEXIST) return r;
    return c_openat2(c_root, path, O_PATH | O_CLOEXEC, IN_ROOT);
}

static char *c_fdpath(long fd, char *buf) {
    char num[24];
    size_t len = 0;
    buf[0] = 0;
    nsb_append(buf, 64, &len, "/proc/self/fd/");
    nsb_append(buf, 64, &len, nsb_itoa(fd, num));
    return buf;
}

struct mount_attr {
    u64 attr_set, attr_clr, propagation, userns_fd;
};
#define MOUNT_ATTR_RDONLY 0x1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#define MOUNT_ATTR_NOEXEC 0x8

/* Read-only, nosuid... on an existing mount need a second step. mount_setattr
 * changes only the given attributes, so the others (and flags the kernel locked
 * in a user namespace) stay. Before Linux 5.12, MS_REMOUNT must restate every
 * flag the mount keeps, read with statfs. */
static long c_bind_flags(const char *target, long fd, u32 flags) {
    struct mount_attr a;
    long r, st[15];
    u32 keep = 0;
    memset(&a, 0, sizeof a);
    if (flags & MS_RDONLY) a.attr_set |= MOUNT_ATTR_RDONLY;
    if (flags & MS_NOSUID) a.attr_set |= MOUNT_ATTR_NOSUID;
    if (flags & MS_NODEV) a.attr_set |= MOUNT_ATTR_NODEV;
    if (flags & MS_NOEXEC) a.attr_set |= MOUNT_ATTR_NOEXEC;
    if (!a.attr_set) return 0;
    if (fd >= 0) {
        r = nsb_syscall6(SYS_mount_setattr, fd, (long)"", AT_EMPTY_PATH | ((flags & MS_REC) ? 0x8000 : 0), (long)&a, sizeof a, 0);
        if (r != -ENOSYS) return r;
    }
    memset(st, 0, sizeof st);
    if (SC2(SYS_statfs, target, st) == 0) keep = (u32)st[10] & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC); /* f_flags: ST_* = MS_* here */
    return SC5(SYS_mount, 0, target, 0, MS_REMOUNT | MS_BIND | keep | (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)), 0);
}

static long c_mount(const char *src, const char *dst, const char *fstype, u32 flags, const char *data, int mk, int inroot) {
    char fdp[64];
    long fd = -1, r;
    const char *target = dst;
    const u32 prop = MS_PRIVATE | MS_SLAVE | MS_SHARED;
    if (inroot) {
        fd = c_open_in_root(dst, mk);
        if (fd < 0) return fd;
        target = c_fdpath(fd, fdp);
    }
    if (flags & MS_BIND) {
        r = SC5(SYS_mount, src, target, 0, MS_BIND | (flags & MS_REC), 0);
        if (r >= 0) {
            /* The fd was opened before the bind: reopen to reach the new mount. */
            if (fd >= 0) {
                sys_close((int)fd);
                fd = c_openat2(c_root, dst, O_PATH | O_CLOEXEC, IN_ROOT);
                if (fd >= 0) target = c_fdpath(fd, fdp);
            }
            r = c_bind_flags(target, fd, flags);
        }
        if (r >= 0 && (flags & prop)) r = SC5(SYS_mount, 0, target, 0, (flags & prop) | (flags & MS_REC), 0);
    } else if ((flags & prop) && !*fstype) {
        r = SC5(SYS_mount, 0, target, 0, flags, 0);
    } else {
        r = SC5(SYS_mount, *src ? src : fstype, target, fstype, flags, *data ? data : 0);
    }
    if (fd >= 0) sys_close((int)fd);
    return r;
}

static long c_mknod(const char *path, u32 mode, u32 major, u32 minor) {
    char buf[4096];
    const char *last;
    long dfd = c_parent_in_root(path, buf, &last), r;
    u32 dev = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xffu) << 12);
    if (dfd < 0) return dfd;
    r = SC4(SYS_mknodat, dfd, last, mode, dev);
    /* mknod applies the umask; the spec's mode is what the node must have. */
    if (r == 0) r = SC4(SYS_fchmodat, dfd, last, mode & 07777, 0);
    sys_close((int)dfd);
    return r == -EEXIST ? 0 : r;
}

static long c_symlink(const char *target, const char *path) {
    char buf[4096];
    const char *last;
    long dfd = c_parent_in_root(path, buf, &last), r;
    if (dfd < 0) return dfd;
    r = SC3(SYS_symlinkat, target, dfd, last);
    sys_close((int)dfd);
    return r == -EEXIST ? 0 : r;
}

static long c_pivot(void) {
    long r = SC1(SYS_fchdir, c_root);
    if (r < 0) return r;
    /* pivot_root(".", "."): the old root ends up stacked on top of the new one at
     * "/", so it can be detached without a directory to put it in (as runc does). */
    r = SC2(SYS_pivot_root, ".", ".");
    if (r < 0) return r;
    r = SC2(SYS_umount2, ".", MNT_DETACH);
    if (r < 0) return r;
    sys_close(c_root);
    c_root = -1;
    return SC1(SYS_chdir, "/");
}

static long c_tty(u32 rows, u32 cols) {
    struct winsize ws;
    struct nsb_msg m;
    int zero = 0;
    long master = sys_openat(AT_FDCWD, "/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC, 0), slave, r;
    if (master < 0) return master;
    r = sys_ioctl((int)master, TIOCSPTLCK, (long)&zero);
    if (r < 0) return r;
    slave = sys_ioctl((int)master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0) return slave;
    memset(&ws, 0, sizeof ws);
    ws.ws_row = (u16)rows;
    ws.ws_col = (u16)cols;
    if (rows && cols) sys_ioctl((int)slave, TIOCSWINSZ, (long)&ws);
    /* Hand the master to nsbox, which relays it to the user's terminal. */
    m.type = MSG_PTY;
    m.op = c_op;
    m.err = 0;
    r = nsb_send(c_sync, (const u8 *)&m, sizeof m, (int)master);
    if (r < 0) return r;
    sys_close((int)master);
    r = sys_setsid();
    if (r < 0) return r;
    r = sys_ioctl((int)slave, TIOCSCTTY, 0);
    if (r < 0) return r;
    for (r = 0; r < 3; r++)
        if (sys_dup3((int)slave, (int)r, 0) < 0) return -EBADF;
    if (slave > 2) sys_close((int)slave);
    return 0;
}

struct ifreq_flags {
    char name[16];
    short flags;
    char pad[22];
};

/* Brings an interface up with the classic ioctls: no netlink needed for lo. */
static long c_ifup(const char *name) {
    struct ifreq_flags ifr;
    long fd = SC3(SYS_socket, 2 /* AF_INET */, 2 /* SOCK_DGRAM */ | SOCK_CLOEXEC, 0), r;
    size_t n = nsb_strlen(name);
    if (fd < 0) return fd;
    if (n > 15) n = 15;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.name, name, n);
    r = sys_ioctl((int)fd, 0x8913 /* SIOCGIFFLAGS */, (long)&ifr);
    if (r >= 0) {
        ifr.flags |= 1; /* IFF_UP */
        r = sys_ioctl((int)fd, 0x8914 /* SIOCSIFFLAGS */, (long)&ifr);
    }
    sys_close((int)fd);
    return r;
}

static long c_setid(u32 uid, u32 gid, i32 ngroups, const u32 *groups) {
    long r;
    if (ngroups >= 0) {
        r = SC2(SYS_setgroups, ngroups, groups);
        if (r < 0) return r;
    }
    r = SC3(SYS_setresgid, gid, gid, gid);
    if (r < 0) return r;
    return SC3(SYS_setresuid, uid, uid, uid);
}

/* The command's path: as given when it holds a '/', else the first executable
 * regular file of that name along PATH (as execvp does). */
static long c_lookup(const char *name, const char *const *envp, char *out) {
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    const char *p;
    long err = -ENOENT;
    int i;
    struct nsb_statx st;
    for (p = name; *p; p++)
        if (*p == '/') {
            /* a path: checked here too, so that --init (which runs it later) fails
             * the same way, with nsbox's message, as a direct exec would */
            size_t n = nsb_strlen(name);
            long r;
            if (n >= 4096) return -ENAMETOOLONG;
            memcpy(out, name, n + 1);
            r = SC5(SYS_statx, AT_FDCWD, out, 0, STATX_TYPE | STATX_MODE, &st);
            if (r < 0) return r;
            if ((st.stx_mode & S_IFMT) != S_IFREG) return -EACCES;
            return SC3(SYS_faccessat, AT_FDCWD, out, X_OK);
        }
    if (!*name) return -ENOENT;
    for (i = 0; envp[i]; i++)
        if (nsb_startswith(envp[i], "PATH=")) path = envp[i] + 5;
    for (p = path;;) {
        const char *e = p;
        size_t len = 0;
        while (*e && *e != ':') e++;
        if (e - p + nsb_strlen(name) + 2 < 4096) {
            memcpy(out, p, (size_t)(e - p));
            len = (size_t)(e - p);
            if (len == 0) out[len++] = '.';
            out[len++] = '/';
            out[len] = 0;
            nsb_append(out, 4096, &len, name);
            if (SC5(SYS_statx, AT_FDCWD, out, 0, STATX_TYPE | STATX_MODE, &st) == 0 && (st.stx_mode & S_IFMT) == S_IFREG) {
                if (SC3(SYS_faccessat, AT_FDCWD, out, X_OK) == 0) return 0;
                err = -EACCES;
            }
        }
        if (!*e) break;
        p = e + 1;
    }
    return err;
}

/* Makes every fd above 2 close-on-exec: nothing of nsbox (or of Bun) leaks into
 * the container (CVE-2024-21626 was a leaked fd). */
static void c_cloexec_from(int lowfd) {
    int fd;
    if (SC3(SYS_close_range, lowfd, ~0u, CLOSE_RANGE_CLOEXEC) == 0) return;
    for (fd = lowfd; fd < 4096; fd++) sys_fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void c_exec(struct cur *c) {
    static const char *argv[4096 + 2];
    static const char *envp[4096];
    static char path[4096];
    u32 flags = rd_u32(c);
    i32 initfd = (i32)rd_u32(c);
    const char *name = rd_str(c);
    long r;
    if (rd_strv(c, argv + 2, 4096) < 0 || rd_strv(c, envp, 4096) < 0 || c->bad) c_fail(-E2BIG);
    if (flags & EXEC_FD) {
        c_cloexec_from(3);
        r = sys_execveat(initfd, "", (char *const *)(argv + 2), (char *const *)envp, AT_EMPTY_PATH);
        c_send(MSG_ERROR, (i32)-r);
        sys_exit(126);
    }
    r = c_lookup(name, envp, path);
    if (r < 0) {
        c_send(MSG_ERROR, (i32)-r);
        sys_exit(r == -ENOENT ? 127 : 126);
    }
    c_cloexec_from(3);
    if (flags & EXEC_INIT) {
        argv[0] = "nsbox-init";
        argv[1] = path;
        r = sys_execveat(initfd, "", (char *const *)argv, (char *const *)envp, AT_EMPTY_PATH);
    } else {
        r = sys_execve(path, (char *const *)(argv + 2), (char *const *)envp);
    }
    c_send(MSG_ERROR, (i32)-r);
    sys_exit(r == -ENOENT ? 127 : 126);
}

static void run_c(const u8 *prog, int len) {
    struct cur c;
    u32 i = 0;
    c.p = prog;
    c.end = prog + len;
    c.bad = 0;
    while (c.p < c.end) {
        const u8 *start = c.p;
        u32 op = rd_u32(&c), size = rd_u32(&c);
        c_op = i++;
        if (c.bad || size < 8 || start + size > c.end) c_fail(-EINVAL);
        switch (op) {
        case C_SETNS: {
            u32 fd = rd_u32(&c), type = rd_u32(&c);
            CHECK(SC2(SYS_setns, fd, type));
            sys_close((int)fd);
            break;
        }
        case C_UNSHARE:
            CHECK(SC1(SYS_unshare, rd_u32(&c)));
            break;
        case C_SYNC: {
            /* fields: send READY (1/0), wait for GO (1/0). Sending early and waiting
             * late lets nsbox do its part (cgroup, network) while we mount. */
            struct nsb_msg m;
            u32 send = rd_u32(&c), wait = rd_u32(&c);
            long r;
            if (send) c_send(MSG_READY, 0);
            if (wait) {
                r = nsb_recv(c_sync, (u8 *)&m, sizeof m, &c_passed);
                if (r != sizeof m || m.type != MSG_GO) sys_exit(125); /* nsbox gave up */
            }
            break;
        }
        case C_ATTACH: {
            /* The mount nsbox made for us (an idmapped rootfs) goes to dst. */
            const char *dst = rd_str(&c);
            if (c_passed < 0) c_fail(-EBADF);
            CHECK(SC5(SYS_move_mount, c_passed, "", AT_FDCWD, dst, 4 /* MOVE_MOUNT_F_EMPTY_PATH */));
            sys_close(c_passed);
            c_passed = -1;
            break;
        }
        case C_PDEATHSIG: {
            u8 b;
            CHECK(sys_prctl(PR_SET_PDEATHSIG, rd_u32(&c), 0));
            /* nsbox may have died before the line above: then its end of the
             * socket is closed and a peek reads end-of-file. */
            if (SC4(SYS_recvfrom, c_sync, &b, 1, MSG_DONTWAIT | 2 /* MSG_PEEK */) == 0) sys_exit(125);
            break;
        }
        case C_SETID: {
            static u32 groups[256];
            u32 uid = rd_u32(&c), gid = rd_u32(&c);
            i32 n = (i32)rd_u32(&c), k;
            if (n > 256) c_fail(-EINVAL);
            for (k = 0; k < n; k++) groups[k] = rd_u32(&c);
            CHECK(c_setid(uid, gid, n, groups));
            break;
        }
        case C_MOUNT: {
            const char *src = rd_str(&c), *dst = rd_str(&c), *fstype = rd_str(&c);
            u32 flags = rd_u32(&c);
            const char *data = rd_str(&c);
            u32 mk = rd_u32(&c), inroot = rd_u32(&c);
            CHECK(c_mount(src, dst, fstype, flags, data, (int)mk, (int)inroot));
            break;
        }
        case C_ROOT: {
            long fd = sys_openat(AT_FDCWD, rd_str(&c), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
            CHECK(fd);
            c_root = (int)fd;
            break;
        }
        case C_MKNOD: {
            const char *p = rd_str(&c);
            u32 mode = rd_u32(&c), ma = rd_u32(&c), mi = rd_u32(&c);
            CHECK(c_mknod(p, mode, ma, mi));
            break;
        }
        case C_SYMLINK: {
            const char *t = rd_str(&c), *p = rd_str(&c);
            CHECK(c_symlink(t, p));
            break;
        }
        case C_MKDIR: {
            const char *p = rd_str(&c);
            long fd;
            (void)rd_u32(&c);
            fd = c_open_in_root(p, MK_DIR);
            CHECK(fd);
            sys_close((int)fd);
            break;
        }
        case C_PIVOT:
            CHECK(c_pivot());
            break;
        case C_IFUP:
            CHECK(c_ifup(rd_str(&c)));
            break;
        case C_REMOUNT: {
            /* after pivot_root: a plain path, opened to change that mount only */
            const char *p = rd_str(&c);
            u32 flags = rd_u32(&c);
            long fd = sys_openat(AT_FDCWD, p, O_PATH | O_CLOEXEC, 0);
            CHECK(fd);
            CHECK(c_bind_flags(p, fd, flags));
            sys_close((int)fd);
            break;
        }
        case C_HOSTNAME: {
            const char *h = rd_str(&c);
            CHECK(SC2(SYS_sethostname, h, nsb_strlen(h)));
            break;
        }
        case C_TTY: {
            u32 rows = rd_u32(&c), cols = rd_u32(&c);
            CHECK(c_tty(rows, cols));
            break;
        }
        case C_SETSID:
            CHECK(sys_setsid());
            break;
        case C_STDIO: {
            i32 fds[3];
            int k;
            fds[0] = (i32)rd_u32(&c);
            fds[1] = (i32)rd_u32(&c);
            fds[2] = (i32)rd_u32(&c);
            for (k = 0; k < 3; k++)
                if (fds[k] >= 0 && fds[k] != k) CHECK(sys_dup3(fds[k], k, 0));
            break;
        }
        case C_CHDIR:
            CHECK(SC1(SYS_chdir, rd_str(&c)));
            break;
        case C_PRCTL: {
            u32 o = rd_u32(&c), a = rd_u32(&c);
            CHECK(sys_prctl((int)o, a, 0));
            break;
        }
        case C_EXEC:
            c_exec(&c); /* does not return */
            break;
        default:
            c_fail(-EINVAL);
        }
        if (c.bad) c_fail(-EINVAL);
        c.p = start + size;
    }
    c_fail(-EINVAL); /* a program must end in C_EXEC */
}

/* W: the first child. See the top of the file. */
static void run_w(const u8 *w, int wlen, const u8 *cp, int clen, int sync, int status) {
    struct cur c;
    long child = 0;
    i32 v;
    u64 none = 0;
    c.p = w;
    c.end = w + wlen;
    c.bad = 0;
    nsb_reset_signals();
    sys_rt_sigprocmask(SIG_SETMASK, &none, NULL);
    while (c.p < c.end) {
        const u8 *start = c.p;
        u32 op = rd_u32(&c), size = rd_u32(&c);
        if (c.bad || size < 8 || start + size > c.end) sys_exit(125);
        switch (op) {
        case W_SETNS: {
            u32 fd = rd_u32(&c), type = rd_u32(&c);
            long r = SC2(SYS_setns, fd, type);
            if (r < 0) {
                v = (i32)r;
                nsb_write_all(status, &v, 4);
                sys_exit(125);
            }
            sys_close((int)fd);
            break;
        }
        case W_SETSID:
            sys_setsid();
            break;
        case W_CLONE: {
            u32 flags = rd_u32(&c);
            child = SC2(SYS_clone, flags | SIGCHLD, 0);
            if (child == 0) {
                sys_close(status);
                c_sync = sync;
                run_c(cp, clen);
            }
            v = (i32)child;
            nsb_write_all(status, &v, 4);
            if (child < 0) sys_exit(125);
            sys_close(sync);
            break;
        }
        case W_EXIT:
            sys_exit(0);
            break;
        case W_EXEC: {
            static const char *argv[256], *envp[256];
            static i32 keep[16];
            u32 fd = rd_u32(&c), nkeep = rd_u32(&c), k;
            if (nkeep > 16) sys_exit(125);
            for (k = 0; k < nkeep; k++) keep[k] = (i32)rd_u32(&c);
            if (rd_strv(&c, argv, 256) < 0 || rd_strv(&c, envp, 256) < 0 || c.bad) sys_exit(125);
            sys_close(status);
            /* keep[k] becomes fd k (0, 1, 2 included): first lift them all out of
             * the way, so that no target overwrites a source still to be moved. */
            for (k = 0; k < nkeep; k++) keep[k] = (i32)sys_fcntl(keep[k], 1030 /* F_DUPFD_CLOEXEC */, 512);
            for (k = 0; k < nkeep; k++) sys_dup3(keep[k], (int)k, 0);
            c_cloexec_from((int)(nkeep > 3 ? nkeep : 3));
            sys_execveat((int)fd, "", (char *const *)argv, (char *const *)envp, AT_EMPTY_PATH);
            sys_exit(125);
            break;
        }
        default:
            sys_exit(125);
        }
        c.p = start + size;
    }
    sys_exit(0);
}

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
 * One exported entry point, nsb_call(fn, args): bun:ffi compiles a trampoline per
 * exported symbol (~0.5 ms each, on every start), so the functions below are
 * reached through this single door. Keep the numbers in step with native/helper.ts. */

/* Starts W (and through it C). out: [W's pid, status fd (reads C's pid as an i32,
 * or -errno), sync fd (nsbox's end of the socketpair)]. Returns 0 or -errno. */
static int nsb_spawn(const u8 *w, int wlen, const u8 *cp, int clen, i32 *out) {
    int sp[2], st[2];
    u64 all = ~0ull, old;
    long pid, r;
    r = SC4(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp);
    if (r < 0) return (int)r;
    r = sys_pipe2(st, O_CLOEXEC);
    if (r < 0) {
        sys_close(sp[0]);
        sys_close(sp[1]);
        return (int)r;
    }
    /* No signal may run a Bun handler in the child: block all across the fork;
     * the child resets every handler to default before it unblocks. */
    sys_rt_sigprocmask(SIG_SETMASK, &all, &old);
    pid = SC2(SYS_clone, SIGCHLD, 0);
    if (pid == 0) {
        sys_close(sp[0]);
        sys_close(st[0]);
        run_w(w, wlen, cp, clen, sp[1], st[1]);
    }
    sys_rt_sigprocmask(SIG_SETMASK, &old, NULL);
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

/* A message header for one buffer and room for one passed fd (SCM_RIGHTS). */
union fd_cmsg {
    struct cmsghdr h;
    u8 buf[sizeof(struct cmsghdr) + 8];
};
static void msg_init(struct msghdr *mh, struct iovec *iov, void *buf, int len, union fd_cmsg *cm) {
    iov->base = buf;
    iov->len = (size_t)len;
    memset(mh, 0, sizeof *mh);
    memset(cm, 0, sizeof *cm);
    mh->iov = iov;
    mh->iovlen = 1;
    mh->control = cm;
    mh->controllen = sizeof cm->buf;
}

/* One message from the sync socket, with an fd if one came (else *fd = -1).
 * Returns the byte count, 0 at end-of-file, or -errno. */
static int nsb_recv(int sock, u8 *buf, int len, i32 *fd) {
    struct msghdr mh;
    struct iovec iov;
    union fd_cmsg cm;
    long r;
    msg_init(&mh, &iov, buf, len, &cm);
    *fd = -1;
    /* A peer that exits with our GO unread resets the connection: that error
     * comes once, before what the peer sent (its ERROR report), which follows. */
    do r = SC3(SYS_recvmsg, sock, &mh, MSG_CMSG_CLOEXEC);
    while (r == -EINTR || r == -104 /* ECONNRESET */);
    if (r > 0 && mh.controllen >= sizeof(struct cmsghdr) + 4 && cm.h.level == SOL_SOCKET && cm.h.type == SCM_RIGHTS)
        memcpy(fd, cm.buf + sizeof(struct cmsghdr), 4);
    return (int)r;
}

/* One message, with fd passed along (SCM_RIGHTS) when fd >= 0. */
static int nsb_send(int sock, const u8 *buf, int len, int fd) {
    struct msghdr mh;
    struct iovec iov;
    union fd_cmsg cm;
    msg_init(&mh, &iov, (void *)buf, len, &cm);
    if (fd >= 0) {
        cm.h.len = sizeof(struct cmsghdr) + 4;
        cm.h.level = SOL_SOCKET;
        cm.h.type = SCM_RIGHTS;
        memcpy(cm.buf + sizeof(struct cmsghdr), &fd, 4);
    } else {
        mh.control = NULL;
        mh.controllen = 0;
    }
    return (int)SC3(SYS_sendmsg, sock, &mh, MSG_NOSIGNAL);
}

/* A detached copy of the tree at path, idmapped through the user namespace
 * usernsfd: the container's root sees a root-owned rootfs as its own, with no
 * chown of the files (Linux 5.12+; overlay accepts it as a lower layer from 5.19). */
static int nsb_idmap_tree(const char *path, int usernsfd) {
    struct mount_attr a;
    long fd = SC3(SYS_open_tree, AT_FDCWD, path, 1 /* OPEN_TREE_CLONE */ | O_CLOEXEC | 0x8000 /* AT_RECURSIVE */), r;
    if (fd < 0) return (int)fd;
    memset(&a, 0, sizeof a);
    a.attr_set = 0x00100000; /* MOUNT_ATTR_IDMAP */
    a.userns_fd = (u64)usernsfd;
    r = nsb_syscall6(SYS_mount_setattr, fd, (long)"", AT_EMPTY_PATH | 0x8000, (long)&a, sizeof a, 0);
    if (r < 0) {
        sys_close((int)fd);
        return (int)r;
    }
    return (int)fd;
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
struct k_termios {
    u32 iflag, oflag, cflag, lflag;
    u8 line, cc[19];
};
static int nsb_termios(int fd, int op, struct k_termios *t) {
    struct k_termios raw;
    long r;
    if (op == 1) return (int)sys_ioctl(fd, 0x5402 /* TCSETS */, (long)t);
    r = sys_ioctl(fd, 0x5401 /* TCGETS */, (long)t);
    if (r < 0 || op == 0) return (int)r;
    raw = *t;
    raw.iflag &= ~(01u | 02u | 010u | 040u | 0100u | 0200u | 0400u | 02000u); /* IGNBRK BRKINT PARMRK ISTRIP INLCR IGNCR ICRNL IXON */
    raw.oflag &= ~01u;                                                       /* OPOST */
    raw.lflag &= ~(010u | 0100u | 02u | 01u | 0100000u);                     /* ECHO ECHONL ICANON ISIG IEXTEN */
    raw.cflag &= ~(060u | 0400u);                                            /* CSIZE PARENB */
    raw.cflag |= 060u;                                                       /* CS8 */
    raw.cc[6] = 1;                                                           /* VMIN */
    raw.cc[5] = 0;                                                           /* VTIME */
    return (int)sys_ioctl(fd, 0x5402 /* TCSETS */, (long)&raw);
}

/* Orphans of our children come to us (so C, once W exits, is ours to wait for). */
static int nsb_subreaper(void) { return (int)sys_prctl(PR_SET_CHILD_SUBREAPER, 1, 0); }

/* Seals a memfd: nobody, not even a container holding /proc/N/exe, can change it. */
static int nsb_seal(int fd) { return (int)sys_fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE); }

static int nsb_pipe(i32 *fds, int flags) { return (int)sys_pipe2(fds, flags); }
static int nsb_close(int fd) { return (int)sys_close(fd); }
static int nsb_kill(int pid, int sig) { return (int)sys_kill(pid, sig); }

enum {
    F_SPAWN = 1,
    F_RECV = 2,
    F_SEND = 3,
    F_READ_FULL = 4,
    F_WAIT = 5,
    F_WINSIZE = 6,
    F_SUBREAPER = 7,
    F_SEAL = 8,
    F_PIPE = 9,
    F_CLOSE = 10,
    F_KILL = 11,
    F_IDMAP_TREE = 12,
    F_PIDFD_OPEN = 13,
    F_PIDFD_SIGNAL = 14,
    F_MOUNT = 15,   /* host-side mounts only (ns --bind): nsbox's own namespaces never change */
    F_UMOUNT = 16,
    F_NETLINK = 17,
    F_TERMIOS = 18,
};

int nsb_call(int fn, const i64 *a) {
    switch (fn) {
    case F_SPAWN: return nsb_spawn((const u8 *)a[0], (int)a[1], (const u8 *)a[2], (int)a[3], (i32 *)a[4]);
    case F_RECV: return nsb_recv((int)a[0], (u8 *)a[1], (int)a[2], (i32 *)a[3]);
    case F_SEND: return nsb_send((int)a[0], (const u8 *)a[1], (int)a[2], (int)a[3]);
    case F_IDMAP_TREE: return nsb_idmap_tree((const char *)a[0], (int)a[1]);
    case F_PIDFD_OPEN: return (int)SC2(SYS_pidfd_open, a[0], 0);
    case F_PIDFD_SIGNAL: return (int)SC4(SYS_pidfd_send_signal, a[0], a[1], 0, 0);
    case F_MOUNT:
        return (int)SC5(SYS_mount, a[0], a[1], a[2], a[3], a[4]);
    case F_UMOUNT: return (int)SC2(SYS_umount2, a[0], a[1]);
    case F_TERMIOS: return nsb_termios((int)a[0], (int)a[1], (struct k_termios *)a[2]);
    case F_NETLINK: return (int)nsb_netlink((int)a[0], (const u8 *)a[1], (int)a[2], (u8 *)a[3], (int)a[4]);
    case F_READ_FULL: return nsb_read_full((int)a[0], (u8 *)a[1], (int)a[2]);
    case F_WAIT: return nsb_wait((int)a[0], (i32 *)a[1], (int)a[2]);
    case F_WINSIZE: return nsb_winsize((int)a[0], (int)a[1], (u16 *)a[2]);
    case F_SUBREAPER: return nsb_subreaper();
    case F_SEAL: return nsb_seal((int)a[0]);
    case F_PIPE: return nsb_pipe((i32 *)a[0], (int)a[1]);
    case F_CLOSE: return nsb_close((int)a[0]);
    case F_KILL: return nsb_kill((int)a[0], (int)a[1]);
    }
    return -ENOSYS;
}
