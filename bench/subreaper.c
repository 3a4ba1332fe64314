/*
 * subreaper CMD [ARG...]: runs CMD as the child of a child subreaper, for the
 * bench's "foreground" section. Every process CMD starts stays below this one,
 * even one that a runtime double-forks or leaves when it exits (orphans are
 * re-parented here, not to the host's init), so that bench/procs.ts can find a
 * runtime's processes by walking this process's descendants.
 *
 * Waits for every descendant, then exits with CMD's status (128+N when a
 * signal N ended it); 125 when it cannot start CMD. Built at bench time with
 * gcc (bench/foreground.ts).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: subreaper CMD [ARG...]\n");
    return 125;
  }
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    perror("subreaper: prctl(PR_SET_CHILD_SUBREAPER)");
    return 125;
  }
  pid_t child = fork();
  if (child < 0) {
    perror("subreaper: fork");
    return 125;
  }
  if (child == 0) {
    execvp(argv[1], argv + 1);
    fprintf(stderr, "subreaper: cannot run %s: ", argv[1]);
    perror("");
    _exit(125);
  }
  int result = 125;
  for (;;) {
    int status;
    pid_t p = wait(&status);
    if (p < 0) {
      if (errno == EINTR) continue;
      break; /* ECHILD: no descendant is left */
    }
    if (p == child) result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return result;
}
