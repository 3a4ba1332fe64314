/*
 * nsbox - child_security.c: C's security steps (part of the helper; see helper.c):
 * the capability sets, the seccomp filter, masked and read-only paths.
 *
 * TypeScript decides every set and builds the filter (src/security/); these only
 * load what they are given, in the order runc uses (libcontainer/init_linux.go):
 *
 *   drop the bounding set + keep caps across setuid  (C_CAPBSET, before C_SETID)
 *   [seccomp here when no_new_privs is off: loading it needs CAP_SYS_ADMIN]
 *   setgroups/setgid/setuid                          (C_SETID)
 *   effective/permitted/inheritable + ambient        (C_CAPSET)
 *   [no_new_privs, then seccomp here when it is on: as late as possible]
 *   execve
 */

#define PR_CAPBSET_DROP 24
#define PR_SET_KEEPCAPS 8
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define CAP_VERSION_3 0x20080522
#define SECCOMP_SET_MODE_FILTER 1

struct cap_header {
    u32 version;
    i32 pid;
};
struct cap_data {
    u32 effective, permitted, inheritable;
};
struct sock_fprog {
    u16 len;
    u16 pad[3];
    const void *filter;
};

static int cap_in(u32 lo, u32 hi, u32 cap) { return cap < 32 ? (int)((lo >> cap) & 1) : cap < 64 ? (int)((hi >> (cap - 32)) & 1) : 0; }

/* Drops from the bounding set every capability up to last that the mask lacks,
 * and keeps the permitted set across the coming setuid (it is set for real by
 * c_capset right after). */
static long c_capbset(u32 lo, u32 hi, u32 last) {
    u32 cap;
    long r;
    for (cap = 0; cap <= last && cap < 64; cap++) {
        if (cap_in(lo, hi, cap)) continue;
        r = sys_prctl(PR_CAPBSET_DROP, cap, 0);
        if (r < 0 && r != -EINVAL) return r; /* EINVAL: this kernel lacks that one */
    }
    return sys_prctl(PR_SET_KEEPCAPS, 1, 0);
}

/* sets[0..7]: effective, permitted, inheritable, ambient, each lo then hi word. */
static long c_capset(const u32 *sets, u32 last) {
    struct cap_header h;
    struct cap_data d[2];
    u32 cap;
    long r = sys_prctl(PR_SET_KEEPCAPS, 0, 0);
    if (r < 0) return r;
    h.version = CAP_VERSION_3;
    h.pid = 0;
    d[0].effective = sets[0];
    d[1].effective = sets[1];
    d[0].permitted = sets[2];
    d[1].permitted = sets[3];
    d[0].inheritable = sets[4];
    d[1].inheritable = sets[5];
    r = SC2(SYS_capset, &h, d);
    if (r < 0) return r;
    r = SC5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (r < 0 && r != -EINVAL) return r;
    for (cap = 0; cap <= last && cap < 64; cap++) {
        if (!cap_in(sets[6], sets[7], cap)) continue;
        r = SC5(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
        if (r < 0) return r;
    }
    return 0;
}

/* The classic BPF program src/security/seccomp built: 8-byte instructions. */
static long c_seccomp(u32 flags, const u8 *prog, u32 len) {
    struct sock_fprog f;
    if (len % 8 || len / 8 > 4096 || len == 0) return -EINVAL;
    memset(&f, 0, sizeof f);
    f.len = (u16)(len / 8);
    f.filter = prog;
    return SC3(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &f);
}

/* A masked path (after pivot_root): a directory gets an empty read-only tmpfs,
 * anything else /dev/null bound over it. Absent paths are skipped: not every
 * kernel has /proc/timer_stats or /sys/firmware. No stat first: the bind itself
 * says what the path is (ENOTDIR: a directory, as a file cannot cover one; or a
 * parent that is no directory, where the tmpfs fails alike: absent). */
static long c_mask(const char *path) {
    long r = SC5(SYS_mount, "/dev/null", path, 0, MS_BIND, 0);
    if (r == -ENOTDIR) {
        r = SC5(SYS_mount, "tmpfs", path, "tmpfs", MS_RDONLY, "size=0,mode=755");
        if (r == -ENOTDIR) return 0;
    }
    return r == -ENOENT ? 0 : r;
}

/* A read-only path (after pivot_root): bound on itself, then made read-only
 * (nosuid, nodev, noexec too, as runc does). Absent paths are skipped. */
static long c_ropath(const char *path) {
    long r = SC5(SYS_mount, path, path, 0, MS_BIND | MS_REC, 0);
    if (r == -ENOENT || r == -ENOTDIR) return 0;
    if (r < 0) return r;
    return c_bind_flags(path, -1, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REC);
}
