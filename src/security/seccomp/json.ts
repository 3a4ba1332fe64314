/**
 * JSON for profiles: integers keep all 64 bits (argument values are uint64 and
 * JSON.parse would round 18446744073709551615), and a syntax error says where it is
 * (Bun's JSON.parse message carries no position).
 */
import { SeccompError } from "./types.ts";

/** Parses `text`, turning integers above 2^53 into bigint; throws a SeccompError naming line and column on bad syntax. */
export function parseJsonExact(text: string, what: string): unknown {
  try {
    return JSON.parse(text, (_key, value, context?: { source?: string }) => {
      if (typeof value === "number" && !Number.isSafeInteger(value) && context?.source && /^-?\d+$/.test(context.source)) {
        return BigInt(context.source);
      }
      return value;
    });
  } catch (e) {
    const where = locate(text, syntaxErrorOffset(text));
    throw new SeccompError(`${what} is not valid JSON (${where}): ${(e as Error).message.replace(/^JSON Parse error: /, "")}`);
  }
}

function locate(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - before.lastIndexOf("\n");
  return `line ${line}, column ${column}`;
}

/**
 * Offset of the first character that breaks the JSON grammar (text.length if it ends too
 * early). A small recursive-descent scanner: only called once JSON.parse has failed.
 */
function syntaxErrorOffset(text: string): number {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const lit = (word: string) => {
    for (const ch of word) {
      if (text[i] !== ch) fail();
      i++;
    }
  };
  const str = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i]! < " ") fail();
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          for (let n = 0; n < 4; n++) if (!/[0-9a-fA-F]/.test(text[++i] ?? "")) fail();
        } else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) fail();
      }
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  const num = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        str();
        ws();
        if (text[i] !== ":") fail();
        i++;
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return void i++;
        else fail();
      }
    } else if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (;;) {
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return void i++;
        else fail();
      }
    } else if (c === '"') str();
    else if (c === "t") lit("true");
    else if (c === "f") lit("false");
    else if (c === "n") lit("null");
    else num();
  };
  try {
    value();
    ws();
    return Math.min(i, text.length);
  } catch (at) {
    return Math.min(at as number, text.length);
  }
}
