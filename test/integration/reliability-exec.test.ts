/**
 * exec racing the container's exit (issue 10, point 1): about 1 exec in 300
 * printed a raw `writing "4934" to .../cgroup.procs: ESRCH: no such process,
 * write`. Containers that exit quickly are hammered with execs; every exec
 * either ran (0), was killed with its container (137, nothing on stderr), or
 * says in one nsbox sentence that the container is not running (125).
 */
import { expect, test } from "bun:test";
import { type RunResult, useNsbox } from "../helpers/nsbox.ts";

const ctx = useNsbox("rel-exec");

const RAW = /ESRCH|ENOENT|ENODEV|EINVAL|cgroup\.procs|write|setns|no such process|\/proc\//i;

function verdict(r: RunResult): string {
  if (r.code === 0 && r.stderr === "") return "ran";
  if (r.code === 137 && r.stderr === "") return "killed with the container";
  if (r.code === 125 && /^nsbox: container \S+ is not running[^\n]*\n$/.test(r.stderr) && !RAW.test(r.stderr)) return "not running";
  return `BAD: code ${r.code} stderr ${JSON.stringify(r.stderr)}`;
}

test("exec into containers that are exiting: one nsbox sentence, never a raw errno", async () => {
  const seen = new Map<string, number>();
  const bad: string[] = [];
  let racing = 0;
  // different lifetimes, so that execs land on every moment of the exit
  for (const life of ["0.1", "0.2", "0.3", "0.15", "0.25", "0.05", "0.35", "0.2"]) {
    const run = await ctx.run(["-d", "--net", "none", ctx.rootfs, "sleep", life]);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    // three workers exec until the container is reported gone
    await Promise.all(
      [0, 1, 2].map(async () => {
        for (let i = 0; i < 60; i++) {
          const r = await ctx.nsbox(["exec", id, "true"]);
          const v = verdict(r);
          seen.set(v, (seen.get(v) ?? 0) + 1);
          if (v.startsWith("BAD")) bad.push(v);
          if (r.code === 125 && !v.startsWith("BAD")) {
            if (r.stderr.includes("while nsbox exec was entering it")) racing++;
            break;
          }
        }
      }),
    );
    await ctx.nsbox(["rm", "-f", id]);
  }
  console.log(`exec verdicts: ${JSON.stringify(Object.fromEntries(seen))}; ${racing} said not running while the exit was under way`);
  expect(bad).toEqual([]);
  expect(seen.get("ran") ?? 0).toBeGreaterThan(0);
  expect(seen.get("not running") ?? 0).toBeGreaterThan(0);
}, 300000);
