/*
 * nsbox - lib.c: the little of libc that the helper and the shim need.
 *
 * Neither program may call libc: both are built -nostdlib at build time (the
 * helper runs between clone and execve, where libc's locks and malloc are not
 * safe in a child of a multithreaded process). So here are the types, the kernel
 * constants, thin syscall wrappers and a few string functions. Everything is
 * static: each program keeps only what it uses.
 * Comes after arch_<arch>.c (SYS_* numbers, nsb_syscall6, O_DIRECTORY).
 */

#ifdef NSB_HELPER
/* The helper is a shared object that exports napi_register_module_v1 alone
 * (NSB_EXPORT, csrc/napi.c): every other symbol of its own, nsb_syscall6 and
 * memcpy included, binds inside it at link time, so no call goes through the PLT
 * to a symbol of libc's (which has its own memcpy) and a cloned child never
 * enters the dynamic linker. Its only imports are Bun's Node-API functions,
 * bound at load (-z now) and called from Bun's thread alone. */
#pragma GCC visibility push(hidden)
#define NSB_EXPORT __attribute__((visibility("default")))
#else
#define NSB_EXPORT
#endif

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

#define NULL ((void *)0)

long nsb_syscall6(long n, long a, long b, long c, long d, long e, long f);
#define SC0(n) nsb_syscall6((n), 0, 0, 0, 0, 0, 0)
#define SC1(n, a) nsb_syscall6((n), (long)(a), 0, 0, 0, 0, 0)
#define SC2(n, a, b) nsb_syscall6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define SC3(n, a, b, c) nsb_syscall6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SC4(n, a, b, c, d) nsb_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define SC5(n, a, b, c, d, e) nsb_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* errno values (identical on every Linux architecture nsbox targets). */
#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define E2BIG 7
#define EINTR 4
#define EIO 5
#define EBADF 9
#define ECHILD 10
#define EAGAIN 11
#define ENOMEM 12
#define EACCES 13
#define EEXIST 17
#define ENOTDIR 20
#define EISDIR 21
#define EBUSY 16
#define EINVAL 22
#define EPIPE 32
#define ENAMETOOLONG 36
#define ENOSYS 38
#define ELOOP 40
#define EXDEV 18
#define ETIMEDOUT 110
#define ENOTEMPTY 39

/* open(2) flags common to x86_64 and arm64 (the others are in arch_*.c). */
#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_CREAT 0100
#define O_EXCL 0200
#define O_NOCTTY 0400
#define O_TRUNC 01000
#define O_APPEND 02000
#define O_NONBLOCK 04000
#define O_CLOEXEC 02000000
#define O_PATH 010000000
#define AT_FDCWD (-100)
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_REMOVEDIR 0x200
#define AT_EMPTY_PATH 0x1000
#define F_GETFD 1
#define F_SETFD 2
#define F_GETFL 3
#define F_SETFL 4
#define F_ADD_SEALS 1033
#define F_SEAL_SEAL 1
#define F_SEAL_SHRINK 2
#define F_SEAL_GROW 4
#define F_SEAL_WRITE 8
#define FD_CLOEXEC 1
#define MFD_CLOEXEC 1
#define MFD_ALLOW_SEALING 2
#define X_OK 1

/* openat2(2) */
struct open_how {
    u64 flags;
    u64 mode;
    u64 resolve;
};
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10

/* statx(2): the same layout on every architecture, unlike struct stat. */
struct statx_ts {
    i64 tv_sec;
    u32 tv_nsec;
    i32 pad;
};
struct nsb_statx {
    u32 stx_mask, stx_blksize;
    u64 stx_attributes;
    u32 stx_nlink, stx_uid, stx_gid;
    u16 stx_mode, pad1;
    u64 stx_ino, stx_size, stx_blocks, stx_attributes_mask;
    struct statx_ts stx_atime, stx_btime, stx_ctime, stx_mtime;
    u32 stx_rdev_major, stx_rdev_minor, stx_dev_major, stx_dev_minor;
    u64 spare[14];
};
#define STATX_TYPE 1
#define STATX_MODE 2
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define S_IFCHR 0020000
#define S_IFLNK 0120000

/* clone(2) / unshare(2) / setns(2) */
/* mount_setattr(2) */
struct mount_attr {
    u64 attr_set, attr_clr, propagation, userns_fd;
};
#define MOUNT_ATTR_RDONLY 0x1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV 0x4
#define MOUNT_ATTR_NOEXEC 0x8
#define CLONE_VM 0x00000100
#define CLONE_VFORK 0x00004000
#define CLONE_FS 0x00000200
#define CLONE_FILES 0x00000400
#define CLONE_NEWTIME 0x00000080
#define CLONE_NEWNS 0x00020000
#define CLONE_NEWCGROUP 0x02000000
#define CLONE_INTO_CGROUP 0x200000000ULL
#define CLONE_NEWUTS 0x04000000
#define CLONE_NEWIPC 0x08000000
#define CLONE_NEWUSER 0x10000000
#define CLONE_NEWPID 0x20000000
#define CLONE_NEWNET 0x40000000

/* mount(2) */
#define MS_RDONLY 1
#define MS_NOSUID 2
#define MS_NODEV 4
#define MS_NOEXEC 8
#define MS_REMOUNT 32
#define MS_BIND 4096
#define MS_MOVE 8192
#define MS_REC 16384
#define MS_PRIVATE (1 << 18)
#define MS_SLAVE (1 << 19)
#define MS_SHARED (1 << 20)
#define MNT_DETACH 2

/* signals (the same numbers on x86_64 and arm64) */
#define SIGHUP 1
#define SIGINT 2
#define SIGQUIT 3
#define SIGKILL 9
#define SIGUSR1 10
#define SIGPIPE 13
#define SIGTERM 15
#define SIGCHLD 17
#define SIGCONT 18
#define SIGSTOP 19
#define SIGTSTP 20
#define SIGTTIN 21
#define SIGTTOU 22
#define SIGWINCH 28
#define NSIG 65
#define SIG_BLOCK 0
#define SIG_UNBLOCK 1
#define SIG_SETMASK 2
#define SA_RESTORER 0x04000000
struct k_sigaction {
    void *handler; /* 0 = SIG_DFL, 1 = SIG_IGN */
    unsigned long flags;
    void *restorer;
    u64 mask;
};
struct siginfo {
    i32 si_signo, si_errno, si_code, pad0;
    i32 si_pid, si_uid, si_status, pad1;
    u8 rest[96];
};

/* wait */
#define WNOHANG 1
#define WEXITED 4
#define __WALL 0x40000000
#define P_PID 1
#define P_ALL 0

/* prctl(2) */
#define PR_SET_PDEATHSIG 1
#define PR_SET_DUMPABLE 4
#define PR_SET_NAME 15
#define PR_SET_CHILD_SUBREAPER 36
#define PR_SET_NO_NEW_PRIVS 38

/* terminals: the generic ioctl numbers, shared by x86_64 and arm64 */
#define TIOCSCTTY 0x540E
#define TIOCGWINSZ 0x5413
#define TIOCSWINSZ 0x5414
#define TIOCSPTLCK 0x40045431
#define TIOCGPTPEER 0x5441
struct winsize {
    u16 ws_row, ws_col, ws_xpixel, ws_ypixel;
};

/* sockets: SCM_RIGHTS passing of the pty master */
#define AF_UNIX 1
#define SOCK_STREAM 1
#define SOCK_SEQPACKET 5
#define SOCK_CLOEXEC 02000000
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MSG_DONTWAIT 0x40
#define MSG_NOSIGNAL 0x4000
#define MSG_CMSG_CLOEXEC 0x40000000
struct iovec {
    void *base;
    size_t len;
};
struct msghdr {
    void *name;
    u32 namelen;
    struct iovec *iov;
    size_t iovlen;
    void *control;
    size_t controllen;
    i32 flags;
};
struct cmsghdr {
    size_t len;
    i32 level, type;
};

struct timespec {
    i64 tv_sec;
    long tv_nsec;
};
#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1

struct pollfd {
    i32 fd;
    short events, revents;
};
#define POLLIN 1
#define POLLHUP 16

#define CLOSE_RANGE_CLOEXEC 4

/* ---- memory and strings ---- */

/* Compilers emit calls to memset and memcpy on their own; both programs are
 * built -nostdlib, so they get them from here. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n) {
    u8 *p = d;
    while (n--) *p++ = (u8)c;
    return d;
}
void *memcpy(void *d, const void *s, size_t n) {
    u8 *p = d;
    const u8 *q = s;
    while (n--) *p++ = *q++;
    return d;
}
void *memmove(void *d, const void *s, size_t n) {
    u8 *p = d;
    const u8 *q = s;
    if (p < q) {
        while (n--) *p++ = *q++;
    } else {
        while (n--) p[n] = q[n];
    }
    return d;
}
static size_t nsb_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
static int nsb_streq(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}
static int nsb_startswith(const char *s, const char *prefix) {
    while (*prefix)
        if (*s++ != *prefix++) return 0;
    return 1;
}
/* Appends s to buf (capacity cap) at *len; returns -1 when it does not fit. */
static int nsb_append(char *buf, size_t cap, size_t *len, const char *s) {
    size_t n = nsb_strlen(s);
    if (*len + n + 1 > cap) return -1;
    memcpy(buf + *len, s, n + 1);
    *len += n;
    return 0;
}
/* Decimal text of v into buf (at least 24 bytes); returns buf. */
static char *nsb_itoa(i64 v, char *buf) {
    char tmp[24];
    int i = 0, j = 0;
    u64 u = v < 0 ? (u64)(-v) : (u64)v;
    do tmp[i++] = (char)('0' + u % 10), u /= 10;
    while (u);
    if (v < 0) buf[j++] = '-';
    while (i) buf[j++] = tmp[--i];
    buf[j] = 0;
    return buf;
}
static i64 nsb_atoi(const char *s) {
    i64 v = 0, neg = 0;
    if (*s == '-') neg = 1, s++;
    while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
    return neg ? -v : v;
}

/* ---- syscall wrappers: each returns the result or -errno, as the kernel does ---- */

static long sys_read(int fd, void *b, size_t n) { return SC3(SYS_read, fd, b, n); }
static long sys_write(int fd, const void *b, size_t n) { return SC3(SYS_write, fd, b, n); }
static long sys_openat(int dfd, const char *p, int flags, int mode) { return SC4(SYS_openat, dfd, p, flags, mode); }
static long sys_close(int fd) { return SC1(SYS_close, fd); }
static long sys_dup3(int a, int b, int flags) { return SC3(SYS_dup3, a, b, flags); }
static long sys_pipe2(int *fds, int flags) { return SC2(SYS_pipe2, fds, flags); }
static long sys_fcntl(int fd, int cmd, long arg) { return SC3(SYS_fcntl, fd, cmd, arg); }
static long sys_ioctl(int fd, unsigned long req, long arg) { return SC3(SYS_ioctl, fd, req, arg); }
static long sys_getpid(void) { return SC0(SYS_getpid); }
static long sys_getppid(void) { return SC0(SYS_getppid); }
static long sys_kill(int pid, int sig) { return SC2(SYS_kill, pid, sig); }
static long sys_prctl(int op, long a, long b) { return SC5(SYS_prctl, op, a, b, 0, 0); }
static long sys_setsid(void) { return SC0(SYS_setsid); }
static long sys_wait4(int pid, int *status, int flags) { return SC4(SYS_wait4, pid, status, flags, 0); }
static long sys_execve(const char *p, char *const *argv, char *const *envp) { return SC3(SYS_execve, p, argv, envp); }
static long sys_execveat(int fd, const char *p, char *const *argv, char *const *envp, int flags) {
    return SC5(SYS_execveat, fd, p, argv, envp, flags);
}
static long sys_mkdirat(int dfd, const char *p, int mode) { return SC3(SYS_mkdirat, dfd, p, mode); }
static long sys_unlinkat(int dfd, const char *p, int flags) { return SC3(SYS_unlinkat, dfd, p, flags); }
static long sys_renameat(int od, const char *o, int nd, const char *n) { return SC4(SYS_renameat, od, o, nd, n); }
static long sys_fsync(int fd) { return SC1(SYS_fsync, fd); }
static long sys_clock_gettime(int clk, struct timespec *ts) { return SC2(SYS_clock_gettime, clk, ts); }
static long sys_rt_sigprocmask(int how, const u64 *set, u64 *old) { return SC4(SYS_rt_sigprocmask, how, set, old, 8); }
static long sys_rt_sigaction(int sig, const struct k_sigaction *act, struct k_sigaction *old) {
    return SC4(SYS_rt_sigaction, sig, act, old, 8);
}
static void sys_exit(int code) {
    for (;;) SC1(SYS_exit_group, code);
}

static long nsb_write_all(int fd, const void *buf, size_t n) {
    const u8 *p = buf;
    while (n) {
        long r = sys_write(fd, p, n);
        if (r == -EINTR) continue;
        if (r < 0) return r;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}
static void nsb_puts(int fd, const char *s) { nsb_write_all(fd, s, nsb_strlen(s)); }

/* Every signal back to its default action, so that nothing of the parent's
 * dispositions (Bun ignores SIGPIPE, for one) reaches a container. */
static void nsb_reset_signals(void) {
    struct k_sigaction dfl;
    int s;
    memset(&dfl, 0, sizeof dfl);
    for (s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sys_rt_sigaction(s, &dfl, NULL);
    }
}

/* The kernel's struct termios (TCGETS/TCSETS). */
struct k_termios {
    u32 iflag, oflag, cflag, lflag;
    u8 line, cc[19];
};

/* Puts terminal fd into raw mode as cfmakeraw does; its settings before go to saved.
 * 0, or -errno (fd is no terminal: ENOTTY). */
static long nsb_make_raw(int fd, struct k_termios *saved) {
    struct k_termios raw;
    long r = sys_ioctl(fd, 0x5401 /* TCGETS */, (long)saved);
    if (r < 0) return r;
    raw = *saved;
    raw.iflag &= ~(01u | 02u | 010u | 040u | 0100u | 0200u | 0400u | 02000u); /* IGNBRK BRKINT PARMRK ISTRIP INLCR IGNCR ICRNL IXON */
    raw.oflag &= ~01u;                                                       /* OPOST */
    raw.lflag &= ~(010u | 0100u | 02u | 01u | 0100000u);                     /* ECHO ECHONL ICANON ISIG IEXTEN */
    raw.cflag &= ~(060u | 0400u);                                            /* CSIZE PARENB */
    raw.cflag |= 060u;                                                       /* CS8 */
    raw.cc[6] = 1;                                                           /* VMIN */
    raw.cc[5] = 0;                                                           /* VTIME */
    return sys_ioctl(fd, 0x5402 /* TCSETS */, (long)&raw);
}

/* The text after KEY where a line of a small file (/proc's status, a cgroup's
 * memory.events) starts with it, read into buf; 0 if the file or the key is not there. */
static const char *nsb_file_field(const char *path, const char *key, char *buf, size_t size) {
    long fd = sys_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0), n;
    size_t i, klen = nsb_strlen(key);
    if (fd < 0) return 0;
    n = sys_read((int)fd, buf, size - 1);
    sys_close((int)fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    for (i = 0; i < (size_t)n; i++)
        if ((i == 0 || buf[i - 1] == '\n') && nsb_startswith(buf + i, key)) return buf + i + klen;
    return 0;
}
