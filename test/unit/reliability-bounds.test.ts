/**
 * Every numeric flag is bounded before anything is allocated (issue 10, point 2):
 * `--cpuset-cpus 0-99999999` ran 21 s and grew to 2.6 GB before "Out of memory".
 * Each row: the flag's parser, a value far out of range, the message naming the
 * flag; each must throw an NsboxError (exit 125) at once.
 */
import { describe, expect, test } from "bun:test";
import { parseFilters } from "../../src/cli/ps.ts";
import { parseTmpfs, resolveUser } from "../../src/config/parse.ts";
import { parseResources } from "../../src/config/resources.ts";
import { parseCpuList, parseCpus, parsePositiveInt, parseSeconds, parseSize } from "../../src/config/units.ts";
import { parseSignal } from "../../src/container/lifecycle.ts";
import { NsboxError } from "../../src/errors.ts";
import { parsePublish } from "../../src/net/ports.ts";
import { parseSubnet } from "../../src/net/subnet.ts";

const HUGE = "9".repeat(400); // Number() of it is Infinity

const rows: [string, () => unknown, RegExp][] = [
  [
    "--cpuset-cpus 0-99999999",
    () => parseResources({ cpusetCpus: "0-99999999" }),
    /--cpuset-cpus "0-99999999": CPU 99999999 does not exist on this machine \(possible: /,
  ],
  ["--cpuset-cpus 0-4294967295", () => parseResources({ cpusetCpus: "0-4294967295" }), /--cpuset-cpus .*CPU 4294967295 does not exist/],
  ["--cpuset-cpus 4294967295", () => parseResources({ cpusetCpus: "4294967295" }), /--cpuset-cpus .*CPU 4294967295/],
  ["--cpuset-cpus 0-HUGE", () => parseResources({ cpusetCpus: `0-${HUGE}` }), /--cpuset-cpus .*does not exist/],
  ["--cpuset-cpus 0,1,99999999-5", () => parseResources({ cpusetCpus: "0,1,99999999-5" }), /--cpuset-cpus .*CPU 99999999/],
  ["--cpuset-mems 0-99999999", () => parseResources({ cpusetMems: "0-99999999" }), /--cpuset-mems "0-99999999": memory node 99999999 does not exist/],
  ["a list without a flag's limit", () => parseCpuList("0-4294967295", "x"), /x .*4294967295 does not exist/],
  ["--cpus HUGE", () => parseCpus(HUGE, 2), /--cpus/],
  ["--cpu-shares HUGE", () => parseResources({ cpuShares: HUGE }), /--cpu-shares/],
  ["--cpu-weight -1", () => parseResources({ cpuWeight: "-1" }), /--cpu-weight/],
  ["--pids-limit 99999999999", () => parseResources({ pidsLimit: "99999999999" }), /--pids-limit/],
  ["--blkio-weight 99999", () => parseResources({ blkioWeight: "99999" }), /--blkio-weight/],
  ["--memory 99999999p", () => parseResources({ memory: "99999999p" }), /--memory .*too large/],
  ["--memory HUGE", () => parseResources({ memory: HUGE }), /--memory .*too large/],
  ["--memory-reservation HUGEg", () => parseResources({ memoryReservation: `${HUGE}g` }), /--memory-reservation .*too large/],
  ["a size of HUGE bytes", () => parseSize(HUGE, "--log-opt max-size"), /--log-opt max-size .*too large/],
  ["--time 99999999999", () => parseSeconds("99999999999", "--time"), /--time 99999999999: use a number of seconds from 0 to 2147483/],
  ["--time HUGE", () => parseSeconds(HUGE, "--time"), /--time/],
  ["--time -1", () => parseSeconds("-1", "--time"), /--time/],
  ["a count of HUGE", () => parsePositiveInt(HUGE, "--x", 1, 10), /--x/],
  ["--signal 99999999999", () => parseSignal("99999999999"), /signal "99999999999"/],
  ["--signal 65", () => parseSignal("65"), /signal "65"/],
  ["-p 1:99999999999", () => parsePublish("1:99999999999"), /--publish "1:99999999999".*outside 1-65535/],
  ["-p HUGE:80", () => parsePublish(`${HUGE}:80`), /--publish .*outside 1-65535/],
  ["--user 99999999999", () => resolveUser("99999999999", "", ""), /--user uid 99999999999 is out of range/],
  ["--user 0:99999999999", () => resolveUser("0:99999999999", "", ""), /--user gid 99999999999 is out of range/],
  ["--tmpfs uid=99999999999", () => parseTmpfs("/t:uid=99999999999"), /--tmpfs option "uid=99999999999".*out of range/],
  ["--tmpfs size=HUGE", () => parseTmpfs(`/t:size=${HUGE}`), /--tmpfs option .*out of range/],
  ["--subnet 10.0.0.0/99", () => parseSubnet("10.0.0.0/99"), /subnet "10.0.0.0\/99"/],
  ["ps --filter exited=99999", () => parseFilters(["exited=99999"]), /exited=99999/],
];

describe("numeric flags are bounded before anything is allocated", () => {
  test.each(rows)("%s", (_name, fn, message) => {
    const t0 = performance.now();
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(NsboxError);
    expect((err as NsboxError).exitCode).toBe(125);
    expect((err as NsboxError).message).toMatch(message);
    expect((err as NsboxError).message).not.toContain("\n");
    expect(ms).toBeLessThan(200);
  });

  test("in-range values still work", () => {
    expect(parseResources({ cpusetCpus: "0", cpusetMems: "0" })?.cpu).toEqual({ cpus: "0", mems: "0" });
    expect(parseSeconds("0", "--time")).toBe(0);
    expect(parseSeconds("2147483", "--time")).toBe(2147483);
    expect(parseCpuList("0-3,7", "x")).toEqual([0, 1, 2, 3, 7]);
  });
});
