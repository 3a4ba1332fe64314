/*
 * escape: one known container escape (or a step of one) per subcommand, run
 * INSIDE a container by test/integration/security-escapes.test.ts.
 *
 * Each subcommand prints one line "NAME: RESULT", RESULT being "ok" or the errno
 * name (EPERM, EROFS...), several "key=RESULT" pairs where an attack has steps.
 *
 * Every call is chosen to be harmless even where it is NOT refused (under
 * --privileged, or in a broken nsbox that gives the container every capability):
 * values written are the ones read, reboot/kexec/clock_settime/init_module get
 * arguments the kernel rejects after its permission checks, block devices are only
 * opened read-only, nothing is ever written to a cgroup's release_agent or to an
 * executable. The checks the kernel makes before those arguments are looked at
 * (seccomp, then capabilities) are what the tests observe: EPERM means refused,
 * anything else means the call reached the kernel proper.
 *
 * Built static by test/helpers/probes.ts: gcc -static -O2.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *en(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : "E?";
}

/* "ok" when r >= 0, the errno's name otherwise */
static const char *res(long r) { return r >= 0 ? "ok" : en(errno); }

static void say(const char *name, const char *result) { printf("%s: %s\n", name, result); }

/* read the file, write the same bytes back (the classic core_pattern / sysrq escape) */
static int write_back(const char *path) {
  char buf[4096];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return say(path, en(errno)), 0;
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  if (n <= 0) return say(path, n < 0 ? en(errno) : "empty"), 0;
  fd = open(path, O_WRONLY);
  if (fd < 0) return say(path, en(errno)), 0;
  ssize_t w = write(fd, buf, (size_t)n);
  int e = errno;
  close(fd);
  say(path, w == n ? "ok" : en(e));
  return 0;
}

static int sysrq(void) {
  /* "h" only prints the help text to the kernel log */
  int fd = open("/proc/sysrq-trigger", O_WRONLY);
  if (fd < 0) return say("sysrq", en(errno)), 0;
  long w = write(fd, "h", 1);
  int e = errno;
  close(fd);
  say("sysrq", w == 1 ? "ok" : en(e));
  return 0;
}

static int do_mount(const char *dir) {
  mkdir(dir, 0755);
  long m = mount("tmpfs", dir, "tmpfs", 0, "size=1m");
  int e = errno;
  if (m < 0) return printf("mount=%s\n", en(e)), 0;
  long u = umount2(dir, 0);
  printf("mount=ok umount=%s\n", res(u));
  return 0;
}

/* mknod PATH b MAJ MIN, then open it read-only (never written) */
static int mknod_open(const char *path, const char *maj, const char *min) {
  unlink(path);
  long m = mknod(path, S_IFBLK | 0600, makedev(atoi(maj), atoi(min)));
  int e = errno;
  if (m < 0) return printf("mknod=%s\n", en(e)), 0;
  int fd = open(path, O_RDONLY);
  e = errno;
  printf("mknod=ok open=%s\n", fd >= 0 ? "ok" : en(e));
  if (fd >= 0) close(fd);
  unlink(path);
  return 0;
}

/* CVE-2022-0492: mount a cgroup v1 hierarchy and reach its release_agent (opened, never written) */
static int cgroup_v1(const char *dir, const char *opts) {
  mkdir(dir, 0755);
  long m = mount("cgroup", dir, "cgroup", 0, opts);
  int e = errno;
  if (m < 0) return printf("mount=%s\n", en(e)), 0;
  char p[4096];
  snprintf(p, sizeof p, "%s/release_agent", dir);
  int fd = open(p, O_WRONLY);
  e = errno;
  printf("mount=ok release_agent=%s\n", fd >= 0 ? "ok" : en(e));
  if (fd >= 0) close(fd);
  umount2(dir, MNT_DETACH);
  return 0;
}

/* release_agent files reachable below an existing cgroup mount (opened for writing, never written) */
static int release_agents(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    int fd = open(argv[i], O_WRONLY);
    say(argv[i], fd >= 0 ? "ok" : en(errno));
    if (fd >= 0) close(fd);
  }
  return 0;
}

/* the "shocker" escape: a file handle for inode 2 (an ext4 root) opened relative to a host-backed mount */
static int shocker(const char *mountfile) {
  struct {
    struct file_handle fh;
    unsigned char bytes[8];
  } h;
  int mnt_id;
  h.fh.handle_bytes = 8;
  long n = syscall(SYS_name_to_handle_at, AT_FDCWD, mountfile, &h.fh, &mnt_id, 0);
  printf("name_to_handle_at=%s ", res(n));
  int mfd = open(mountfile, O_RDONLY);
  if (mfd < 0) return printf("open=%s\n", en(errno)), 0;
  h.fh.handle_bytes = 8;
  h.fh.handle_type = 1; /* FILEID_INO32_GEN: inode 2, generation 0 */
  unsigned int ino = 2, gen = 0;
  memcpy(h.bytes, &ino, 4);
  memcpy(h.bytes + 4, &gen, 4);
  int fd = (int)syscall(SYS_open_by_handle_at, mfd, &h.fh, O_RDONLY | O_DIRECTORY);
  int e = errno;
  if (fd < 0) return printf("open_by_handle_at=%s\n", en(e)), 0;
  printf("open_by_handle_at=ok entries=");
  DIR *d = fdopendir(fd);
  struct dirent *de;
  while (d && (de = readdir(d))) printf("%s,", de->d_name);
  printf("\n");
  return 0;
}

/* ptrace: a child of ours (docker allows it), and a pid given on the command line */
static int do_ptrace(const char *other) {
  pid_t c = fork();
  if (c == 0) {
    pause();
    _exit(0);
  }
  long a = ptrace(PTRACE_ATTACH, c, 0, 0);
  int e = errno;
  printf("child=%s", a >= 0 ? "ok" : en(e));
  kill(c, SIGKILL);
  waitpid(c, NULL, 0);
  if (other) {
    long o = ptrace(PTRACE_ATTACH, atoi(other), 0, 0);
    printf(" other=%s", res(o));
    if (o >= 0) ptrace(PTRACE_DETACH, atoi(other), 0, 0);
  }
  printf("\n");
  return 0;
}

/* a new user namespace, then a mount in a new mount namespace it owns */
static int unshare_mount(void) {
  long u = unshare(CLONE_NEWUSER | CLONE_NEWNS);
  if (u < 0) return printf("unshare=%s\n", en(errno)), 0;
  long m = mount("tmpfs", "/tmp", "tmpfs", 0, "size=1m");
  printf("unshare=ok mount=%s\n", res(m));
  return 0;
}

/* clone(CLONE_NEWUSER): docker's profile refuses namespace flags without CAP_SYS_ADMIN */
static int clone_newuser(void) {
  long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (r == 0) _exit(0);
  int e = errno;
  if (r > 0) waitpid((pid_t)r, NULL, 0);
  say("clone_newuser", r >= 0 ? "ok" : en(e));
  return 0;
}

static int tiocsti(const char *marker) {
  /* ESCAPE + the marker, one character at a time, into each terminal we can name */
  int tty = open("/dev/tty", O_RDWR | O_NOCTTY), tty_err = errno;
  int fds[4] = {0, 1, 2, tty};
  const char *names[4] = {"fd0", "fd1", "fd2", "devtty"};
  char out[256] = "";
  for (int i = 0; i < 4; i++) {
    const char *r;
    if (fds[i] < 0) {
      r = en(tty_err);
    } else {
      long ok = 0;
      for (const char *c = marker; *c && ok >= 0; c++) ok = ioctl(fds[i], TIOCSTI, c);
      r = ok >= 0 ? "ok" : en(errno);
    }
    size_t l = strlen(out);
    snprintf(out + l, sizeof out - l, "%s%s=%s", i ? " " : "", names[i], r);
  }
  /* printed to stderr, the same terminal: the pane shows this line either way */
  fprintf(stderr, "tiocsti %s\n", out);
  return 0;
}

/* the fds this process holds (0, 1, 2 expected), with what they point to; the directory fd of the scan is left out */
static int fds(const char *pid) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%s/fd", pid ? pid : "self");
  DIR *d = opendir(dir);
  if (!d) return say("fds", en(errno)), 0;
  int own = dirfd(d);
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    if (!pid && atoi(de->d_name) == own) continue;
    char p[512], t[512];
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    ssize_t n = readlink(p, t, sizeof t - 1);
    t[n < 0 ? 0 : n] = 0;
    printf("%s %s\n", de->d_name, t);
  }
  closedir(d);
  return 0;
}

/*
 * CVE-2019-5736, as the public proof of concept: for SECONDS, scan /proc for new
 * processes and watch each until its /proc/PID/exe can be opened (a runtime's
 * helper is refused while it is not dumpable, then it execs); when that is the
 * file DEV:INO (the host's nsbox binary: the #!/proc/self/exe trick makes the
 * helper exec it inside the container), keep the fd and keep trying to reopen it
 * for writing, which works once nothing runs it any more unless the runtime
 * prevents it. A write open is closed at once: nothing is ever written.
 * Prints: seen=N (processes) exe_opened=N (the target opened) write_ok=N
 * write_error=ERRNO (of the last refused write open). Ends after SECS, or once
 * /tmp/exe-watch-stop exists (the test makes it when its processes are done, so
 * that a slow machine, such as the emulated VM, does not end the watch early).
 */
static int exe_watch(const char *secs, const char *devino) {
  unsigned long dev = strtoul(devino, NULL, 10), ino = strtoul(strchr(devino, ':') + 1, NULL, 10);
  static char seen[1 << 22];
  int pending[1024], npending = 0;
  int held[256], nheld = 0, nseen = 0, opened = 0, writable = 0, lasterr = 0;
  time_t end = time(NULL) + atoi(secs);
  int self = getpid();
  printf("watching\n");
  fflush(stdout);
  while (time(NULL) < end && access("/tmp/exe-watch-stop", F_OK) != 0) {
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
      int pid = atoi(de->d_name);
      if (pid <= 1 || pid == self || pid >= (int)sizeof seen || seen[pid]) continue;
      seen[pid] = 1;
      nseen++;
      if (npending < 1024) pending[npending++] = pid;
    }
    if (d) closedir(d);
    for (int i = 0; i < npending; i++) {
      char p[64];
      struct stat st;
      snprintf(p, sizeof p, "/proc/%d/exe", pending[i]);
      int fd = open(p, O_PATH);
      if (fd < 0 && errno == EACCES) continue; /* not dumpable yet: look again */
      if (fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
        opened++;
        int w = open(p, O_WRONLY);
        if (w >= 0) writable++, close(w);
        else lasterr = errno;
        if (nheld < 256) held[nheld++] = fd;
        else close(fd);
      } else if (fd >= 0) {
        close(fd);
      }
      /* gone, or it runs something else now: done with it */
      pending[i--] = pending[--npending];
    }
    /* one success proves it: stop, so that the host can run the binary again (ETXTBSY meanwhile) */
    for (int i = 0; i < nheld && !writable; i++) {
      char p[64];
      snprintf(p, sizeof p, "/proc/self/fd/%d", held[i]);
      int w = open(p, O_WRONLY);
      if (w >= 0) writable++, close(w);
      else lasterr = errno;
    }
    sched_yield();
  }
  printf("seen=%d exe_opened=%d write_ok=%d write_error=%s\n", nseen, opened, writable, lasterr ? en(lasterr) : "none");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return fprintf(stderr, "usage: escape SUBCOMMAND [ARGS]\n"), 2;
  const char *c = argv[1];
  const char *a = argc > 2 ? argv[2] : NULL, *b = argc > 3 ? argv[3] : NULL, *d = argc > 4 ? argv[4] : NULL;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(c, "write-back")) return write_back(a);
  if (!strcmp(c, "sysrq")) return sysrq();
  if (!strcmp(c, "mount")) return do_mount(a);
  if (!strcmp(c, "mknod-open")) return mknod_open(a, b, d);
  if (!strcmp(c, "cgroup-v1")) return cgroup_v1(a, b);
  if (!strcmp(c, "release-agents")) return release_agents(argc - 2, argv + 2);
  if (!strcmp(c, "shocker")) return shocker(a);
  if (!strcmp(c, "ptrace")) return do_ptrace(a);
  if (!strcmp(c, "unshare-mount")) return unshare_mount();
  if (!strcmp(c, "clone-newuser")) return clone_newuser();
  if (!strcmp(c, "tiocsti")) return tiocsti(a);
  if (!strcmp(c, "fds")) return fds(a);
  if (!strcmp(c, "exe-watch")) return exe_watch(a, b);
  /* single syscalls with arguments the kernel rejects after its permission checks */
  if (!strcmp(c, "keyctl")) return say(c, res(syscall(SYS_keyctl, 9999, 0, 0, 0, 0))), 0;
  if (!strcmp(c, "add_key"))
    return say(c, res(syscall(SYS_add_key, "nsbox-no-such-key-type", "d", "x", 1, -2 /* KEY_SPEC_PROCESS_KEYRING */))), 0;
  if (!strcmp(c, "bpf")) return say(c, res(syscall(SYS_bpf, 9999, NULL, 0))), 0;
  if (!strcmp(c, "perf_event_open")) return say(c, res(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0))), 0;
  /* unknown flag 0x100 and too many segments: EINVAL after the permission check, nothing (un)loaded */
  if (!strcmp(c, "kexec_load")) return say(c, res(syscall(SYS_kexec_load, 0, 17, NULL, 0x100))), 0;
  /* an empty image: ENOEXEC after the permission check */
  if (!strcmp(c, "init_module")) return say(c, res(syscall(SYS_init_module, "", 0, ""))), 0;
  if (!strcmp(c, "finit_module")) return say(c, res(syscall(SYS_finit_module, -1, "", 0))), 0;
  if (!strcmp(c, "clock_settime")) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 2000000000}; /* invalid: EINVAL, the clock is never set */
    return say(c, res(syscall(SYS_clock_settime, CLOCK_REALTIME, &ts))), 0;
  }
  if (!strcmp(c, "swapon")) return say(c, res(syscall(SYS_swapon, "/nsbox-no-such-swapfile", 0))), 0;
  /* a wrong magic number: EINVAL after the permission check, never a reboot */
  if (!strcmp(c, "reboot")) return say(c, res(syscall(SYS_reboot, 0x12345678, 0x12345678, 0x01234567, NULL))), 0;
  if (!strcmp(c, "personality")) return say(c, res(syscall(SYS_personality, strtoul(a, NULL, 0)))), 0;
  if (!strcmp(c, "clone3")) return say(c, res(syscall(SYS_clone3, NULL, 0))), 0;
  if (!strcmp(c, "vsock")) return say(c, res(socket(40 /* AF_VSOCK */, SOCK_STREAM, 0))), 0;
  if (!strcmp(c, "setns")) return say(c, res(syscall(SYS_setns, -1, 0))), 0;
  fprintf(stderr, "escape: unknown subcommand %s\n", c);
  return 2;
}
