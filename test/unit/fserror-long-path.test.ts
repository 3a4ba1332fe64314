/** A path longer than PATH_MAX: Bun refuses it itself, with an error that names no syscall (found by the chaos fuzzer, seed 1011872327 case 249). */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { fsErrorSentence, isFsError } from "../../src/state/fserror.ts";

test("Bun's own ENAMETOOLONG is a filesystem error, said as one sentence naming the path", () => {
  const path = `/nonexistent-nsbox-test/${"y".repeat(5000)}`;
  let err: unknown;
  try {
    writeFileSync(path, "");
  } catch (e) {
    err = e;
  }
  expect(isFsError(err)).toBe(true);
  const text = fsErrorSentence(err as NodeJS.ErrnoException);
  expect(text).toBe(`cannot open ${path}: name too long`);
});
