/*
 * nsbox - child_interp.c: the interpreters of the W and C programs that
 * src/native/program.ts encodes (part of the helper; see helper.c).
 */


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
            /* A detached mount nsbox made for us (an idmapped tree) goes to dst:
             * fd -1 is the one sent with GO (the --userns rootfs), another an fd
             * nsbox opened before the fork (an OCI idmapped mount), which we
             * inherited. inroot: dst is inside the new root, made as mk says. */
            i32 fd = (i32)rd_u32(&c);
            const char *dst = rd_str(&c);
            u32 mk = rd_u32(&c), inroot = rd_u32(&c);
            long tfd;
            if (fd < 0) fd = c_passed;
            if (fd < 0) c_fail(-EBADF);
            /* (an idmapped bind's tree: a file, or a directory openable at ".") */
            if (mk == MK_SOURCE) mk = (u32)c_mk_like(fd, ".");
            if (inroot) {
                tfd = c_open_in_root(dst, (int)mk);
                CHECK(tfd);
                CHECK(SC5(SYS_move_mount, fd, "", tfd, "", 4 /* MOVE_MOUNT_F_EMPTY_PATH */ | 0x40 /* MOVE_MOUNT_T_EMPTY_PATH */));
                sys_close((int)tfd);
            } else
                CHECK(SC5(SYS_move_mount, fd, "", AT_FDCWD, dst, 4 /* MOVE_MOUNT_F_EMPTY_PATH */));
            sys_close(fd);
            if (fd == c_passed) c_passed = -1;
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
            u32 mode = rd_u32(&c), ma = rd_u32(&c), mi = rd_u32(&c), uid = rd_u32(&c), gid = rd_u32(&c);
            CHECK(c_mknod(p, mode, ma, mi, uid, gid));
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
        case C_MOVEROOT:
            CHECK(c_moveroot());
            break;
        case C_UNMOUNTHOST:
            CHECK(c_unmounthost(rd_str(&c)));
            break;
        case C_IFUP:
            CHECK(c_ifup(rd_str(&c)));
            break;
        case C_REMOUNT: {
            /* after pivot_root: a plain path, opened to change that mount only */
            const char *p = rd_str(&c);
            u32 flags = rd_u32(&c);
            CHECK(c_bind_flags(p, -1, flags));
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
        case C_CAPBSET: {
            u32 lo = rd_u32(&c), hi = rd_u32(&c), last = rd_u32(&c);
            CHECK(c_capbset(lo, hi, last));
            break;
        }
        case C_CAPSET: {
            u32 sets[8], k;
            for (k = 0; k < 8; k++) sets[k] = rd_u32(&c);
            CHECK(c_capset(sets, rd_u32(&c)));
            break;
        }
        case C_SECCOMP: {
            u32 flags = rd_u32(&c), n;
            const u8 *prog = rd_bytes(&c, &n);
            if (c.bad) c_fail(-EINVAL);
            CHECK(c_seccomp(flags, prog, n));
            break;
        }
        case C_MASK:
            CHECK(c_mask(rd_str(&c)));
            break;
        case C_ROPATH:
            CHECK(c_ropath(rd_str(&c)));
            break;
        case C_WAITSTART:
            c_waitfd = (i32)rd_u32(&c);
            c_keep = rd_u32(&c);
            break;
        case C_WRITE: {
            const char *p = rd_str(&c), *text = rd_str(&c);
            long fd = sys_openat(AT_FDCWD, p, O_WRONLY | O_CLOEXEC, 0);
            CHECK(fd);
            CHECK(nsb_write_all((int)fd, text, nsb_strlen(text)));
            sys_close((int)fd);
            break;
        }
        case C_UMASK:
            SC1(SYS_umask, rd_u32(&c));
            break;
        case C_CHROOT: {
            const char *dir = rd_str(&c);
            /* (O_CLOEXEC: never the command's; only c_waitstart uses it) */
            c_procfd = (int)sys_openat(AT_FDCWD, "/proc", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
            CHECK(SC1(SYS_chdir, dir));
            CHECK(SC1(SYS_chroot, "."));
            break;
        }
        case C_KEYRING: {
            const char *name = rd_str(&c);
            long r = SC2(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, *name ? name : 0);
            if (r != -ENOSYS) CHECK(r);
            break;
        }
        case C_PERSONALITY:
            CHECK(SC1(SYS_personality, rd_u32(&c)));
            break;
        case C_RLIMIT: {
            u32 res = rd_u32(&c), i;
            if (c_nrlim >= 16 || res >= 16) c_fail(-EINVAL);
            c_rlim[c_nrlim][0] = res;
            for (i = 1; i < 5; i++) c_rlim[c_nrlim][i] = rd_u32(&c);
            c_nrlim++;
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
    /* Non-dumpable before C exists (C inherits it): a process of the container (a
     * pod member sharing the pid namespace sees C from its clone) may never open
     * C's /proc/PID/exe (the sealed shim, which nobody can change anyway) nor its
     * memory, which holds the programs (CVE-2019-5736). */
    sys_prctl(PR_SET_DUMPABLE, 0, 0);
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
        case W_CAPBSET: {
            u32 lo = rd_u32(&c), hi = rd_u32(&c), last = rd_u32(&c);
            if (c_capbset(lo, hi, last) < 0) sys_exit(125);
            sys_prctl(PR_SET_KEEPCAPS, 0, 0);
            break;
        }
        case W_CLONE: {
            u32 flags = rd_u32(&c);
            i32 cgfd = (i32)rd_u32(&c);
            child = -1;
            if (cgfd >= 0) {
                /* cgroup v2: C is born in its cgroup (clone3's CLONE_INTO_CGROUP),
                 * so nobody moves it there later: a move waits for an RCU grace
                 * period. Any refusal (a kernel before 5.7, a cgroup that cannot
                 * take it) falls back to clone, and nsbox moves C as before. */
                u64 args[11] = {0}; /* struct clone_args, CLONE_ARGS_SIZE_VER2 */
                args[0] = (u64)flags | CLONE_INTO_CGROUP;
                args[4] = SIGCHLD;   /* exit_signal */
                args[10] = (u64)cgfd; /* cgroup */
                child = SC2(SYS_clone3, (long)args, sizeof args);
            }
            if (child < 0) child = SC2(SYS_clone, flags | SIGCHLD, 0);
            if (cgfd >= 0 && child != 0) sys_close(cgfd);
            if (child == 0) {
                /* a directory fd outside the container's root: never C's to keep */
                if (cgfd >= 0) sys_close(cgfd);
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
