/**
 * nsbox is built with `--compile-jit-policy` (Makefile): JavaScriptCore's tier-up
 * thresholds start scaled up, so the run-once code of a start stays in the
 * interpreter instead of being compiled by the JIT on a second core (measured on
 * `run /bin/true`: -4 ms of CPU, -3.5 MiB of peak RSS). Work that loops over
 * much data (unpacking a tarball, pulling an image) calls fullJit() first.
 */
export function fullJit(): void {
  Bun.unsafe.setJITPolicy(1);
}
