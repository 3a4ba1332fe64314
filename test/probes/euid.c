/*
 * euid: prints "uid=R euid=E" (real and effective user ids). Installed setuid
 * root in the rootfs by test/integration/security-flags.test.ts: run as a
 * non-root user, euid=0 shows the setuid bit worked; no_new_privs keeps it at
 * the caller's uid.
 */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
  return 0;
}
