import { describe, expect, test } from "bun:test";
import { kernelAtLeast, kernelVersion } from "../../src/kernel.ts";

describe("kernelVersion: the version and major revision at the start of a release", () => {
  test("releases as the kernel gives them, and seccomp's minKernel strings", () => {
    expect(kernelVersion("6.18.44-fc-v857")).toEqual([6, 18]);
    expect(kernelVersion("5.10.0-28-amd64")).toEqual([5, 10]);
    expect(kernelVersion("3.12-rc5")).toEqual([3, 12]);
    expect(kernelVersion("4.8")).toEqual([4, 8]);
    expect(kernelVersion("10.0")).toEqual([10, 0]);
  });

  test("anything that does not start with <digits>.<digits> is unknown", () => {
    for (const bad of ["", "6", "6.", ".1", "v6.1", " 6.1", "6a.1", "6.x", "unknown"]) expect(kernelVersion(bad)).toBeUndefined();
  });

  test("kernelAtLeast: true, false, or undefined when unknown", () => {
    expect(kernelAtLeast(5, 10, "5.10.0")).toBe(true);
    expect(kernelAtLeast(5, 10, "5.9.16")).toBe(false);
    expect(kernelAtLeast(5, 10, "6.0")).toBe(true);
    expect(kernelAtLeast(5, 10, "4.19.0")).toBe(false);
    expect(kernelAtLeast(5, 10, "unknown")).toBeUndefined();
  });
});
