/*
 * nsbox - arch_aarch64.c: the arm64 twin of arch_x86_64.c (see there for why the
 * C code is concatenated instead of #included). Numbers come from the kernel's
 * asm-generic/unistd.h, which arm64 uses.
 */
#define NSB_ARCH "aarch64"

#define SYS_read 63
#define SYS_write 64
#define SYS_openat 56
#define SYS_close 57
#define SYS_fstat 80
#define SYS_lseek 62
#define SYS_mmap 222
#define SYS_munmap 215
#define SYS_rt_sigaction 134
#define SYS_rt_sigprocmask 135
#define SYS_rt_sigsuspend 133
#define SYS_rt_sigtimedwait 137
#define SYS_ioctl 29
#define SYS_pipe2 59
#define SYS_dup3 24
#define SYS_nanosleep 101
#define SYS_futex 98
#define SYS_getpid 172
#define SYS_getppid 173
#define SYS_sendmsg 211
#define SYS_recvmsg 212
#define SYS_socketpair 199
#define SYS_socket 198
#define SYS_bind 200
#define SYS_connect 203
#define SYS_sendto 206
#define SYS_recvfrom 207
#define SYS_clone 220
#define SYS_execve 221
#define SYS_exit 93
#define SYS_exit_group 94
#define SYS_wait4 260
#define SYS_waitid 95
#define SYS_kill 129
#define SYS_fcntl 25
#define SYS_flock 32
#define SYS_dup 23
#define SYS_fsync 82
#define SYS_ftruncate 46
#define SYS_getdents64 61
#define SYS_chdir 49
#define SYS_fchdir 50
#define SYS_renameat 38
#define SYS_mkdirat 34
#define SYS_unlinkat 35
#define SYS_linkat 37
#define SYS_symlinkat 36
#define SYS_readlinkat 78
#define SYS_fchmod 52
#define SYS_fchmodat 53
#define SYS_fchown 55
#define SYS_fchownat 54
#define SYS_umask 166
#define SYS_personality 92
#define SYS_keyctl 219
#define SYS_getuid 174
#define SYS_geteuid 175
#define SYS_getgid 176
#define SYS_getegid 177
#define SYS_setuid 146
#define SYS_setgid 144
#define SYS_setsid 157
#define SYS_setpgid 154
#define SYS_getpgid 155
#define SYS_setgroups 159
#define SYS_setresuid 147
#define SYS_setresgid 149
#define SYS_capget 90
#define SYS_capset 91
#define SYS_seccomp 277
#define SYS_bpf 280
#define SYS_mknodat 33
#define SYS_prctl 167
#define SYS_chroot 51
#define SYS_mount 40
#define SYS_umount2 39
#define SYS_pivot_root 41
#define SYS_sethostname 161
#define SYS_setdomainname 162
#define SYS_gettid 178
#define SYS_tgkill 131
#define SYS_unshare 97
#define SYS_setns 268
#define SYS_memfd_create 279
#define SYS_execveat 281
#define SYS_statx 291
#define SYS_ppoll 73
#define SYS_clock_gettime 113
#define SYS_signalfd4 74
#define SYS_faccessat 48
#define SYS_newfstatat 79
#define SYS_prlimit64 261
#define SYS_eventfd2 19
#define SYS_pidfd_send_signal 424
#define SYS_open_tree 428
#define SYS_move_mount 429
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#define SYS_pidfd_open 434
#define SYS_clone3 435
#define SYS_close_range 436
#define SYS_openat2 437
#define SYS_mount_setattr 442
#define SYS_statfs 43

/* open(2) flags whose values differ between architectures. */
#define O_DIRECTORY 040000
#define O_NOFOLLOW 0100000

/* arm64 passes the number in x8 and the arguments in x0..x5; the C convention gives
 * us nr in x0 and the arguments shifted by one. See arch_x86_64.c about clone.
 * The instructions are written as words, from when TinyCC compiled the helper (its
 * arm64 back end has no assembler); gcc takes them as they are. Checked with
 * aarch64-linux-gnu-as + objdump. */
__asm__(
    ".text\n"
    ".globl nsb_syscall6\n"
    ".type nsb_syscall6,%function\n"
    ".p2align 2\n"
    "nsb_syscall6:\n"
    "  .int 0xaa0003e8\n" /* mov x8, x0 */
    "  .int 0xaa0103e0\n" /* mov x0, x1 */
    "  .int 0xaa0203e1\n" /* mov x1, x2 */
    "  .int 0xaa0303e2\n" /* mov x2, x3 */
    "  .int 0xaa0403e3\n" /* mov x3, x4 */
    "  .int 0xaa0503e4\n" /* mov x4, x5 */
    "  .int 0xaa0603e5\n" /* mov x5, x6 */
    "  .int 0xd4000001\n" /* svc #0 */
    "  .int 0xd65f03c0\n"); /* ret */

#ifdef NSB_HELPER
/* nsb_clone_run(flags, stack_top, fn, arg): see arch_x86_64.c. clone's arguments
 * on arm64: flags, stack, parent_tid, tls, child_tid. */
__asm__(
    ".text\n"
    ".hidden nsb_clone_run\n"
    ".type nsb_clone_run,%function\n"
    ".p2align 2\n"
    "nsb_clone_run:\n"
    "  and x1, x1, #-16\n"
    "  stp x2, x3, [x1, #-16]!\n" /* fn, arg on the child's stack */
    "  mov x2, #0\n"
    "  mov x3, #0\n"
    "  mov x4, #0\n"
    "  mov x8, #220\n" /* SYS_clone */
    "  svc #0\n"
    "  cbnz x0, 1f\n"
    "  mov x29, #0\n"
    "  ldp x2, x0, [sp], #16\n"
    "  blr x2\n"
    "  mov x8, #93\n" /* SYS_exit */
    "  svc #0\n"
    "  brk #0\n"
    "1:\n"
    "  ret\n");
#endif

#ifdef NSB_SHIM
__asm__(
    ".text\n"
    ".globl _start\n"
    "_start:\n"
    "  mov x29, #0\n"
    "  mov x30, #0\n"
    "  mov x0, sp\n"
    "  and sp, x0, #-16\n"
    "  bl nsb_start\n"
    "  brk #0\n");
#endif
