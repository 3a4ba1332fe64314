/*
 * Per-syscall cost inside a container, for the bench's "security" section.
 * Built at bench time with `gcc -static -O2` (no libc needed in the rootfs).
 *
 * Usage: getppid [N]   (N calls per syscall, default 1000000)
 *
 * Times N calls of two syscalls inside the container, so the container's
 * start-up is not in the number:
 *  - getppid(): allowed unconditionally by docker's profile. Since Linux 5.11
 *    the kernel caches such "always allow" verdicts per filter (the seccomp
 *    action cache), so the BPF program does not even run for it;
 *  - personality(0xffffffff): a query that changes nothing, allowed by
 *    docker's profile only for five argument values, so the filter runs and
 *    compares the argument on every call (no cache can answer for it).
 * Each is timed in BLOCKS blocks, alternating, and the median block is
 * printed: a block that a timer interrupt hit does not move it. Two clocks:
 * CLOCK_THREAD_CPUTIME_ID counts only the time this thread ran (user and
 * kernel, so the syscall and the filter are in it), which other processes
 * on a busy host cannot stretch; CLOCK_MONOTONIC is the wall clock, which
 * they can (it is printed too, for comparison).
 *
 * Output (one "key value..." per line, for bench/security.ts):
 *   seccomp MODE FILTERS          from /proc/self/status (0 none, 2 filter)
 *   getppid CPU_NS WALL_NS        nanoseconds per call
 *   personality CPU_NS WALL_NS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BLOCKS 9

static long long now_ns(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

struct cost {
  double cpu, wall;
};

/* syscall() is an external call: the compiler cannot drop or merge the calls. */
static struct cost per_call(long nr, unsigned long arg, long n) {
  long long c0 = now_ns(CLOCK_THREAD_CPUTIME_ID), w0 = now_ns(CLOCK_MONOTONIC);
  for (long i = 0; i < n; i++) syscall(nr, arg);
  long long w1 = now_ns(CLOCK_MONOTONIC), c1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
  return (struct cost){(double)(c1 - c0) / (double)n, (double)(w1 - w0) / (double)n};
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void print_seccomp(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  const char *mode = "?", *filters = "?";
  static char m[32], fl[32];
  if (!f) {
    printf("seccomp ? ?\n");
    return;
  }
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "Seccomp: %31s", m) == 1) mode = m;
    if (sscanf(line, "Seccomp_filters: %31s", fl) == 1) filters = fl;
  }
  fclose(f);
  printf("seccomp %s %s\n", mode, filters);
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 1000000;
  long block = n / BLOCKS > 0 ? n / BLOCKS : 1;
  double gc[BLOCKS], gw[BLOCKS], pc[BLOCKS], pw[BLOCKS];

  print_seccomp();
  /* The argument rule must let the query through; a refusal would time an EPERM path instead. */
  if (syscall(SYS_personality, 0xffffffffUL) < 0) {
    perror("personality(0xffffffff)");
    return 1;
  }
  per_call(SYS_getppid, 0, block); /* warm-up: page in, settle the CPU frequency */
  per_call(SYS_personality, 0xffffffffUL, block);
  for (int i = 0; i < BLOCKS; i++) {
    struct cost g = per_call(SYS_getppid, 0, block), p = per_call(SYS_personality, 0xffffffffUL, block);
    gc[i] = g.cpu, gw[i] = g.wall, pc[i] = p.cpu, pw[i] = p.wall;
  }
  qsort(gc, BLOCKS, sizeof gc[0], cmp);
  qsort(gw, BLOCKS, sizeof gw[0], cmp);
  qsort(pc, BLOCKS, sizeof pc[0], cmp);
  qsort(pw, BLOCKS, sizeof pw[0], cmp);
  printf("getppid %.2f %.2f\npersonality %.2f %.2f\n", gc[BLOCKS / 2], gw[BLOCKS / 2], pc[BLOCKS / 2], pw[BLOCKS / 2]);
  return 0;
}
