/*
 * nsbox - arch_x86_64.c: everything in the C code that depends on the CPU.
 *
 * The C programs of nsbox are built by concatenation, never by #include, and use
 * no system header (they run without libc: see lib.c). The Makefile gives gcc
 *   arch_<arch>.c + lib.c + helper.c ... host_calls.c   (the helper, a shared object)
 *   arch_<arch>.c + lib.c + shim.c                       (the static shim)
 * Adding an architecture means adding one file like this one (see arch_aarch64.c).
 * Numbers come from the kernel's uapi asm/unistd_64.h.
 */
#define NSB_ARCH "x86_64"

#define SYS_read 0
#define SYS_write 1
#define SYS_openat 257
#define SYS_close 3
#define SYS_fstat 5
#define SYS_lseek 8
#define SYS_mmap 9
#define SYS_munmap 11
#define SYS_rt_sigaction 13
#define SYS_rt_sigprocmask 14
#define SYS_rt_sigsuspend 130
#define SYS_rt_sigtimedwait 128
#define SYS_ioctl 16
#define SYS_pipe2 293
#define SYS_dup3 292
#define SYS_nanosleep 35
#define SYS_futex 202
#define SYS_getpid 39
#define SYS_getppid 110
#define SYS_sendmsg 46
#define SYS_recvmsg 47
#define SYS_socketpair 53
#define SYS_socket 41
#define SYS_bind 49
#define SYS_connect 42
#define SYS_sendto 44
#define SYS_recvfrom 45
#define SYS_clone 56
#define SYS_execve 59
#define SYS_exit 60
#define SYS_exit_group 231
#define SYS_wait4 61
#define SYS_waitid 247
#define SYS_kill 62
#define SYS_fcntl 72
#define SYS_flock 73
#define SYS_dup 32
#define SYS_fsync 74
#define SYS_ftruncate 77
#define SYS_getdents64 217
#define SYS_chdir 80
#define SYS_fchdir 81
#define SYS_renameat 264
#define SYS_mkdirat 258
#define SYS_unlinkat 263
#define SYS_linkat 265
#define SYS_symlinkat 266
#define SYS_readlinkat 267
#define SYS_fchmod 91
#define SYS_fchmodat 268
#define SYS_fchown 93
#define SYS_fchownat 260
#define SYS_umask 95
#define SYS_personality 135
#define SYS_keyctl 250
#define SYS_getuid 102
#define SYS_geteuid 107
#define SYS_getgid 104
#define SYS_getegid 108
#define SYS_setuid 105
#define SYS_setgid 106
#define SYS_setsid 112
#define SYS_setpgid 109
#define SYS_getpgid 121
#define SYS_setgroups 116
#define SYS_setresuid 117
#define SYS_setresgid 119
#define SYS_capget 125
#define SYS_capset 126
#define SYS_seccomp 317
#define SYS_bpf 321
#define SYS_mknodat 259
#define SYS_prctl 157
#define SYS_chroot 161
#define SYS_mount 165
#define SYS_umount2 166
#define SYS_pivot_root 155
#define SYS_sethostname 170
#define SYS_setdomainname 171
#define SYS_gettid 186
#define SYS_tgkill 234
#define SYS_unshare 272
#define SYS_setns 308
#define SYS_memfd_create 319
#define SYS_execveat 322
#define SYS_statx 332
#define SYS_ppoll 271
#define SYS_clock_gettime 228
#define SYS_signalfd4 289
#define SYS_faccessat 269
#define SYS_newfstatat 262
#define SYS_prlimit64 302
#define SYS_eventfd2 290
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
#define SYS_statfs 137

/* open(2) flags whose values differ between architectures. */
#define O_DIRECTORY 0200000
#define O_NOFOLLOW 0400000

/*
 * nsb_syscall6(nr, a1..a6): the one way into the kernel. x86_64 passes the number
 * in rax and the arguments in rdi rsi rdx r10 r8 r9; the C calling convention gives
 * us nr in rdi and the arguments shifted by one, the sixth on the stack.
 * A fork-style clone (no CLONE_VM, stack 0) returns here twice, once in each process,
 * each on its own copy of the stack: that is why clone needs no special wrapper.
 */
__asm__(
    ".text\n"
    ".globl nsb_syscall6\n"
    ".type nsb_syscall6,@function\n"
    "nsb_syscall6:\n"
    "  movq %rdi, %rax\n"
    "  movq %rsi, %rdi\n"
    "  movq %rdx, %rsi\n"
    "  movq %rcx, %rdx\n"
    "  movq %r8, %r10\n"
    "  movq %r9, %r8\n"
    "  movq 8(%rsp), %r9\n"
    "  syscall\n"
    "  ret\n");

#ifdef NSB_HELPER
/* The return from a signal handler that the helper installs (csrc/fg_forward.c):
 * x86_64's kernel jumps to sa_restorer, which must call rt_sigreturn (15), as
 * glibc's __restore_rt does. (arm64's kernel uses the vDSO's when none is given.) */
__asm__(
    ".text\n"
    ".hidden nsb_restore_rt\n"
    ".type nsb_restore_rt,@function\n"
    "nsb_restore_rt:\n"
    "  movq $15, %rax\n"
    "  syscall\n"
    "  hlt\n");
void nsb_restore_rt(void);
#define NSB_RESTORER nsb_restore_rt

/* nsb_clone_run(flags, stack_top, fn, arg): clone(flags) with the child on its
 * own stack, where it runs fn(arg) and exits with its value (as glibc's clone).
 * For CLONE_VM|CLONE_VFORK (see nsb_spawn): the child may not return into its
 * parent's frames, which share its memory, so it never returns from here. */
__asm__(
    ".text\n"
    ".hidden nsb_clone_run\n"
    ".type nsb_clone_run,@function\n"
    "nsb_clone_run:\n"
    "  andq $-16, %rsi\n"
    "  subq $16, %rsi\n"
    "  movq %rdx, 0(%rsi)\n" /* fn */
    "  movq %rcx, 8(%rsi)\n" /* arg */
    "  xorl %edx, %edx\n"    /* parent_tid */
    "  xorl %r10d, %r10d\n"  /* child_tid */
    "  xorl %r8d, %r8d\n"    /* tls */
    "  movl $56, %eax\n"     /* SYS_clone(flags, stack) */
    "  syscall\n"
    "  testq %rax, %rax\n"
    "  jnz 1f\n"
    "  xorl %ebp, %ebp\n"
    "  popq %rax\n"
    "  popq %rdi\n"
    "  callq *%rax\n"
    "  movl %eax, %edi\n"
    "  movl $60, %eax\n"     /* SYS_exit */
    "  syscall\n"
    "  hlt\n"
    "1:\n"
    "  ret\n");
#endif

#ifdef NSB_SHIM
/* Entry point of the static shim: hand the initial stack (argc, argv, envp) to C. */
__asm__(
    ".text\n"
    ".globl _start\n"
    "_start:\n"
    "  xorl %ebp, %ebp\n"
    "  movq %rsp, %rdi\n"
    "  andq $-16, %rsp\n"
    "  call nsb_start\n"
    "  hlt\n");
#endif
