/*
 * nsbox - helper.c: the program that a container's first processes run, and the
 * protocol nsbox speaks with them. Built by gcc at build time (after
 * arch_<arch>.c and lib.c) into both native parts that nsbox embeds: the shared
 * object that nsbox dlopens (the protocol's side in Bun: csrc/host_calls.c,
 * csrc/fg_forward.c) and the static shim, whose nsbox-spawn role interprets the
 * program (csrc/child_*.c, csrc/shim.c).
 *
 * Bun is multithreaded, so nsbox never unshares or setns'es its own process. The
 * container's processes run a small program that the TypeScript side encoded
 * (src/native/program.ts): which namespaces to join or create, what to mount
 * where, which identity to take, what to exec. TS decides the policy; C only
 * carries it out with raw syscalls, between clone and execve, where no libc, no
 * malloc and no JavaScript may run.
 *
 * Processes (as in runc's nsexec and crun):
 *
 *   nsbox (Bun) --vfork+execve of the shim--> W --clone(CLONE_NEW*)--> C --execve--> the command
 *
 * W and C run this code in the shim (nsbox-spawn, csrc/shim.c), not in a fork
 * of Bun: a fork copied Bun's page tables, and every page Bun wrote meanwhile
 * (see nsb_spawn in csrc/host_calls.c).
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
    W_CLONE = 2,   /* flags, cgroup dir fd or -1: clone C (into that cgroup), which runs the C program */
    W_EXIT = 3,    /* foreground: leave C to nsbox */
    W_EXEC = 4,    /* fd keep[] argv[] envp[]: become the monitor shim, keep[k] as fd k */
    W_SETSID = 5,  /* detach from nsbox's session and terminal */
    W_CAPBSET = 6, /* lo hi last: drop the rest of the bounding set (the monitor's, before W_EXEC) */
    /* C ops */
    C_SETNS = 20,      /* fd nstype */
    C_UNSHARE = 21,    /* flags */
    C_SYNC = 22,       /* READY to nsbox; wait for GO unless the flag says later */
    C_PDEATHSIG = 23,  /* sig: die with nsbox (checked after setting it) */
    C_SETID = 24,      /* uid gid ngroups(-1: leave) groups[] */
    C_MOUNT = 25,      /* src dst fstype flags data mk inroot */
    C_ROOT = 26,       /* path: the new root, for resolving in-root paths */
    C_MKNOD = 27,      /* path mode major minor uid gid */
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
    C_ATTACH = 39,     /* fd dst mk inroot: move a detached mount (fd -1: the one sent with GO) to dst */
    C_IFUP = 40,       /* name: bring a network interface up (lo of a new netns) */
    C_CAPBSET = 41,    /* lo hi last: drop the rest of the bounding set, keep caps over setuid */
    C_CAPSET = 42,     /* eff[2] prm[2] inh[2] amb[2] last: the capability sets after setuid */
    C_SECCOMP = 43,    /* flags bytes: load a seccomp filter (struct sock_filter[]) */
    C_MASK = 44,       /* path: hide it (after pivot_root) */
    C_ROPATH = 45,     /* path: make it read-only (after pivot_root) */
    C_WAITSTART = 46,  /* fd nkeep: OCI create; C_EXEC waits on the fifo fd for `start`, keeps fds 3..3+nkeep-1 */
    C_WRITE = 47,      /* path text: write a file (a sysctl under /proc/sys, after pivot_root) */
    C_UMASK = 48,      /* mask */
    C_PERSONALITY = 49, /* persona */
    C_KEYRING = 50,    /* name ("": anonymous): join a new session keyring, as runc (ENOSYS: none to join) */
    C_CHROOT = 52,     /* path: the root without a mount namespace (OCI, as runc) */
    C_RLIMIT = 51,     /* resource soft_lo soft_hi hard_lo hard_hi: set by C_EXEC just before its execve */
    C_MOVEROOT = 53,   /* MS_MOVE the new root onto / and chroot into it (OCI --no-pivot) */
    C_UNMOUNTHOST = 54, /* path: detach (or cover) a proc/sysfs of the old root before C_MOVEROOT */
};

/* Messages on the sync socket. */
enum { MSG_READY = 1, MSG_ERROR = 2, MSG_PTY = 3, MSG_CREATED = 4, MSG_GO = 10 };
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
#define MK_SOURCE 3   /* a bind's mount point: a directory if its source is one, else a file */

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
/* Bytes: u32 length, the bytes, padded to 4 (a seccomp program). */
static const u8 *rd_bytes(struct cur *c, u32 *len) {
    u32 n = rd_u32(c);
    const u8 *b = c->p;
    u32 padded = (n + 3) & ~3u;
    *len = 0;
    if (c->bad || c->p + padded > c->end || padded < n) {
        c->bad = 1;
        return c->p;
    }
    c->p += padded;
    *len = n;
    return b;
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

#ifdef NSB_SHIM
/* ---- state of C (C runs in the shim: nsbox-spawn) ---- */
static int c_sync = -1;    /* our end of the socketpair */
static int c_root = -1;    /* O_PATH fd of the new root before pivot_root */
static u32 c_op;           /* index of the op being run, for error reports */
static i32 c_passed = -1;  /* an fd nsbox sent with GO (see C_ATTACH) */
static i32 c_waitfd = -1;  /* OCI create: O_PATH fd of exec.fifo (see C_WAITSTART) */
static u32 c_keep;         /* OCI --preserve-fds: fds 3..3+c_keep-1 stay open across execve */

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
#endif
