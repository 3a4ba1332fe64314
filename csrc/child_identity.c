/*
 * nsbox - child_identity.c: C's terminal, network and identity steps, and the
 * final execve (part of the helper; see helper.c).
 */


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

/*
 * OCI create: everything is set up and the command found; tell nsbox (whose
 * `create` then returns) and wait until `nsbox start` opens exec.fifo for
 * reading, as runc's init does. The fifo is reached through /proc/self/fd, the
 * root being the container's by now. Past MSG_CREATED nobody reads our reports.
 */
static int c_procfd = -1; /* C_CHROOT: the host's /proc (the chroot has none mounted), until execve */
static void c_waitstart(void) {
    char p[48] = "/proc/self/fd/", num[24];
    size_t len = nsb_strlen(p);
    long fd;
    int base = c_procfd >= 0 ? c_procfd : AT_FDCWD;
    const char *rel = c_procfd >= 0 ? p + 6 : p; /* "self/fd/N" under that /proc */
    u8 b = 0;
    struct k_sigaction ign, old;
    nsb_append(p, sizeof p, &len, nsb_itoa(c_waitfd, num));
    CHECK(fd = sys_openat(base, rel, O_PATH | O_CLOEXEC, 0));
    sys_close((int)fd);
    c_send(MSG_CREATED, 0);
    sys_close(c_sync);
    c_sync = -1;
    fd = sys_openat(base, rel, O_WRONLY | O_CLOEXEC, 0); /* blocks until `start` */
    if (fd < 0) sys_exit(125);
    /* The open returning is the start; the byte only tells `start` so. If that
     * nsbox is gone already, the write fails: with SIGPIPE ignored for it, not
     * the container (the disposition goes back before execve). */
    memset(&ign, 0, sizeof ign);
    ign.handler = (void *)1;
    sys_rt_sigaction(SIGPIPE, &ign, &old);
    sys_write((int)fd, &b, 1);
    sys_rt_sigaction(SIGPIPE, &old, NULL);
    sys_close((int)fd);
    sys_close(c_waitfd);
}

/* fds 3..3+c_keep-1 (--preserve-fds, LISTEN_FDS) stay open across execve; the rest close. */
static void c_close_extra(void) {
    u32 k;
    c_cloexec_from(3 + (int)c_keep);
    for (k = 0; k < c_keep; k++) sys_fcntl(3 + (int)k, F_SETFD, 0);
}

/* argv and envp as pointer arrays. Their room is mapped for the program's size
 * (a string takes at least 8 bytes of it), so the only limit on their count is
 * the kernel's own (E2BIG from execve), as for any shell. The command's argv
 * starts at argv + 4: the slots before it take the shim's own arguments.
 *
 * C runs the sealed memfd shim (nsbox-spawn), so it execs the command itself: a
 * command that is `#!/proc/self/exe` (or that path itself) runs the shim, which
 * nobody can change, never a binary of the host that a watcher could open for
 * writing once it is dumpable again (CVE-2019-5736). (When C was a fork of Bun,
 * it exec'd the shim first, as nsbox-exec, for that reason: one execve more.)
 * With --init the shim (initfd) is exec'd as nsbox-init, which runs the command. */
/* Resource limits that would stop this process itself (RLIMIT_AS below the
 * address space it has now: c_exec's mmap fails):
 * recorded by C_RLIMIT and set here, the last step before execve, which
 * starts a new, small address space. */
static u32 c_rlim[16][5];
static u32 c_nrlim;
static void c_apply_rlimits(void) {
    u32 i;
    for (i = 0; i < c_nrlim; i++) {
        u64 lim[2];
        long r;
        lim[0] = ((u64)c_rlim[i][2] << 32) | c_rlim[i][1];
        lim[1] = ((u64)c_rlim[i][4] << 32) | c_rlim[i][3];
        r = SC4(SYS_prlimit64, 0, c_rlim[i][0], lim, 0);
        if (r < 0) c_fail(r);
    }
}

static void c_exec(struct cur *c) {
    static char path[4096];
    long room = (long)(c->end - c->p) / 8 + 8;
    long mem = nsb_syscall6(SYS_mmap, 0, (room + 4) * 2 * (long)sizeof(char *), 3 /* PROT_READ|PROT_WRITE */, 0x22 /* MAP_PRIVATE|MAP_ANONYMOUS */, -1, 0);
    const char **argv = (const char **)mem, **envp = argv + room + 4;
    u32 flags = rd_u32(c);
    i32 initfd = (i32)rd_u32(c);
    const char *name = rd_str(c);
    long r;
    if (mem < 0 && mem > -4096) c_fail(mem);
    if (rd_strv(c, argv + 4, (int)room) < 0 || rd_strv(c, envp, (int)room) < 0 || c->bad) c_fail(-E2BIG);
    if (flags & EXEC_FD) {
        c_cloexec_from(3);
        c_apply_rlimits();
        r = sys_execveat(initfd, "", (char *const *)(argv + 4), (char *const *)envp, AT_EMPTY_PATH);
        c_send(MSG_ERROR, (i32)-r);
        sys_exit(126);
    }
    r = c_lookup(name, envp, path);
    if (r < 0) {
        c_send(MSG_ERROR, (i32)-r);
        sys_exit(r == -ENOENT ? 127 : 126);
    }
    if (initfd < 0) c_fail(-EBADF);
    /* OCI create: wait for `start` here, the command found and nothing left to fail but its exec */
    if (c_waitfd >= 0) c_waitstart();
    c_close_extra();
    c_apply_rlimits();
    if (flags & EXEC_INIT) {
        /* All blocked across the exec (nsbox-init blocks them all at once anyway):
         * nsbox forwards a signal the moment this exec closes the sync socket, and
         * PID 1 of a pid namespace drops one it neither handles nor blocks: blocked,
         * it stays pending for init's sigtimedwait, which passes it on. */
        u64 all = ~0ull;
        sys_rt_sigprocmask(SIG_SETMASK, &all, NULL);
        argv[2] = "nsbox-init";
        argv[3] = path;
        r = sys_execveat(initfd, "", (char *const *)(argv + 2), (char *const *)envp, AT_EMPTY_PATH);
    } else {
        /* the sync socket closes at the execve: nsbox reads end-of-file, "started" */
        sys_fcntl(c_sync, F_SETFD, FD_CLOEXEC);
        r = sys_execve(path, (char *const *)(argv + 4), (char *const *)envp);
    }
    c_send(MSG_ERROR, (i32)-r);
    sys_exit(r == -ENOENT ? 127 : 126);
}
