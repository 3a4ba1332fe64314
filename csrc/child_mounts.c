/*
 * nsbox - child_mounts.c: C's mount steps (part of the helper; see helper.c).
 * Every path inside the new root is resolved with openat2(RESOLVE_IN_ROOT), so a
 * symlink in the rootfs can never steer a mount or mkdir onto the host.
 */

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
    /* by fd when we hold one, else by path (mount_setattr follows it as open() would) */
    r = fd >= 0 ? nsb_syscall6(SYS_mount_setattr, fd, (long)"", AT_EMPTY_PATH | ((flags & MS_REC) ? 0x8000 : 0), (long)&a, sizeof a, 0)
                : nsb_syscall6(SYS_mount_setattr, AT_FDCWD, (long)target, (flags & MS_REC) ? 0x8000 : 0, (long)&a, sizeof a, 0);
    if (r != -ENOSYS) return r;
    memset(st, 0, sizeof st);
    if (SC2(SYS_statfs, target, st) == 0) keep = (u32)st[10] & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC); /* f_flags: ST_* = MS_* here */
    return SC5(SYS_mount, 0, target, 0, MS_REMOUNT | MS_BIND | keep | (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)), 0);
}

/* MK_SOURCE: a bind's mount point is of its source's kind, a directory for a
 * directory and a file for anything else. Asked here rather than by nsbox: one
 * open, resolved as mount(2) or move_mount(2) will see the source; one that
 * cannot be opened gets a directory, and the mount says what is wrong with it. */
static int c_mk_like(int dfd, const char *path) {
    long fd = sys_openat(dfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd >= 0) sys_close((int)fd);
    return fd == -ENOTDIR ? MK_FILE : MK_DIR;
}

static long c_mount(const char *src, const char *dst, const char *fstype, u32 flags, const char *data, int mk, int inroot) {
    char fdp[64];
    long fd = -1, r;
    const char *target = dst;
    const u32 prop = MS_PRIVATE | MS_SLAVE | MS_SHARED;
    if (mk == MK_SOURCE) mk = c_mk_like(AT_FDCWD, src);
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

static long c_mknod(const char *path, u32 mode, u32 major, u32 minor, u32 uid, u32 gid) {
    char buf[4096];
    const char *last;
    long dfd = c_parent_in_root(path, buf, &last), r;
    u32 dev = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xffu) << 12);
    if (dfd < 0) return dfd;
    r = SC4(SYS_mknodat, dfd, last, mode, dev);
    /* mknod applies the umask; the spec's mode is what the node must have. */
    if (r == 0) r = SC4(SYS_fchmodat, dfd, last, mode & 07777, 0);
    /* the host node's owner (a --device such as /dev/kvm, group kvm) */
    if (r == 0 && (uid || gid)) r = SC5(SYS_fchownat, dfd, last, uid, gid, AT_SYMLINK_NOFOLLOW);
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

/* OCI --no-pivot (runc's msMoveRoot): for a root pivot_root refuses (a rootfs on
 * the initramfs), move the new root's mount onto "/" and chroot into it. The old
 * root stays underneath, hidden from the process's root but in its namespace
 * (its full proc and sysfs mounts are detached first: c_unmounthost). */
static long c_moveroot(void) {
    long r = SC1(SYS_fchdir, c_root);
    if (r < 0) return r;
    r = SC5(SYS_mount, ".", "/", 0, MS_MOVE, 0);
    if (r < 0) return r;
    r = SC1(SYS_chroot, ".");
    if (r < 0) return r;
    sys_close(c_root);
    c_root = -1;
    return SC1(SYS_chdir, "/");
}

/* OCI --no-pivot, before c_moveroot, for each full proc or sysfs mount of the
 * old root (as runc's msMoveRoot): while one is in the namespace, the kernel lets
 * the container mount procfs or sysfs anew, unmasked. Made a slave first, so that
 * its unmount reaches no other namespace; detached, or covered with a tmpfs where
 * that is refused (a locked mount in a user namespace). Gone (under an earlier
 * one): nothing to do. */
static long c_unmounthost(const char *path) {
    long r = SC5(SYS_mount, 0, path, 0, MS_SLAVE | MS_REC, 0);
    if (r == -ENOENT) return 0;
    if (r < 0) return r;
    r = SC2(SYS_umount2, path, MNT_DETACH);
    if (r == -EINVAL || r == -EPERM) r = SC5(SYS_mount, "tmpfs", path, "tmpfs", 0, 0);
    return r;
}
