/**
 * Strict command-line parsing on top of citty's argument definitions.
 *
 * citty renders --help from these definitions, but its parser accepts unknown
 * flags silently and reads flags after the container's command as its own
 * (`nsbox run ROOTFS sh -c ...` must hand `-c` to sh). This parser stops at the
 * command, refuses unknown flags with a one-line error, and collects repeatable
 * flags (-e, -v, -p) into lists.
 */
import type { ArgsDef, CommandDef } from "citty";
import { fail } from "../errors.ts";
import { filter, find, some } from "../list.ts";

export type FlagDef = {
  type: "boolean" | "string" | "positional";
  description: string;
  alias?: string;
  valueHint?: string;
  default?: string | boolean;
  /** may be given more than once; the values are collected in order */
  multiple?: boolean;
  /** a string flag that may stand alone (--userns): this is its value then; --flag=V gives another */
  bare?: string;
  required?: boolean;
};
export type FlagsDef = Record<string, FlagDef>;

export type Parsed = {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** everything after the last declared positional (the container's command) */
  rest: string[];
};

/**
 * citty's defineCommand, which only returns its argument, without loading citty:
 * citty is needed only to render --help (src/main.ts imports it then), and
 * loading it at every start cost 2.3-2.7 ms (bench/results.md, "what was tried").
 */
export function defineCommand<T extends ArgsDef = ArgsDef>(def: CommandDef<T>): CommandDef<T> {
  return def;
}

/**
 * citty's view of the same definitions, for help output. Each command's `args` is
 * `() => toCitty(flags)`, which citty resolves when it renders help: the conversion
 * is not paid at every start of run and exec, whose modules every start evaluates.
 */
export function toCitty(defs: FlagsDef): ArgsDef {
  const out: ArgsDef = {};
  for (const [name, d] of Object.entries(defs)) {
    const description = d.multiple ? `${d.description} (repeatable)` : d.description;
    if (d.type === "positional") {
      out[name] = { type: "positional", description, required: d.required ?? false };
      continue;
    }
    // citty prints every alias with one dash: long aliases go in the description
    const alias = d.alias && d.alias.length === 1 ? d.alias : undefined;
    const desc = d.alias && d.alias.length > 1 ? `${description} (also --${d.alias})` : description;
    if (d.type === "boolean") out[name] = { type: "boolean", description: desc, alias };
    else out[name] = { type: "string", description: desc, alias, valueHint: d.valueHint, default: d.default as string | undefined };
  }
  return out;
}

/**
 * Parses argv for one command. With `stopAfter` = n, the n-th positional and
 * everything after it go to `rest` untouched (n = number of positionals before
 * the command: 1 for `run ROOTFS CMD...`).
 */
export function parseFlags(command: string, argv: string[], defs: FlagsDef, stopAfter?: number): Parsed {
  const byLong = new Map<string, [string, FlagDef]>();
  const byShort = new Map<string, [string, FlagDef]>();
  for (const [name, d] of Object.entries(defs)) {
    if (d.type === "positional") continue;
    byLong.set(name, [name, d]);
    if (d.alias) (d.alias.length === 1 ? byShort : byLong).set(d.alias, [name, d]);
  }
  const flags: Parsed["flags"] = {};
  const positionals: string[] = [];
  const set = (name: string, d: FlagDef, value: string | boolean) => {
    if (d.multiple) ((flags[name] as string[] | undefined) ?? (flags[name] = [])).push(value as string);
    else flags[name] = value;
  };
  const where = command ? `nsbox ${command}` : "nsbox";
  const unknown = (flag: string): never => fail(`unknown flag ${flag} for "${where}" (see: ${where} --help)`);
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (stopAfter !== undefined && positionals.length === stopAfter) break;
    if (arg === "--") {
      // everything after is positional: the remaining declared positionals, then the command
      i++;
      while (i < argv.length && (stopAfter === undefined || positionals.length < stopAfter)) positionals.push(argv[i++] as string);
      break;
    }
    if (arg.startsWith("--") && arg.length > 2) {
      const eq = arg.indexOf("=");
      const key = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      const hit = byLong.get(key);
      if (!hit) unknown(`--${key}`);
      const [name, d] = hit as [string, FlagDef];
      if (d.type === "boolean") {
        if (eq >= 0) {
          const v = arg.slice(eq + 1);
          if (v !== "true" && v !== "false") fail(`--${key} takes no value other than true or false, got "${v}"`);
          set(name, d, v === "true");
        } else set(name, d, true);
      } else if (eq >= 0) set(name, d, arg.slice(eq + 1));
      else if (d.bare !== undefined) set(name, d, d.bare);
      else {
        if (i + 1 >= argv.length) fail(`flag --${key} needs a value (see: ${where} --help)`);
        set(name, d, argv[++i] as string);
      }
    } else if (arg.startsWith("-") && arg.length > 1) {
      // -it, -e KEY=V, -eKEY=V, -p 80:80
      for (let j = 1; j < arg.length; j++) {
        const ch = arg[j] as string;
        const hit = byShort.get(ch);
        if (!hit) unknown(`-${ch}`);
        const [name, d] = hit as [string, FlagDef];
        if (d.type === "boolean") set(name, d, true);
        else {
          const inline = arg.slice(j + 1);
          if (inline) set(name, d, inline.startsWith("=") ? inline.slice(1) : inline);
          else {
            if (i + 1 >= argv.length) fail(`flag -${ch} needs a value (see: ${where} --help)`);
            set(name, d, argv[++i] as string);
          }
          break;
        }
      }
    } else positionals.push(arg);
  }
  const rest = argv.slice(i);
  const declared = filter(Object.entries(defs), ([, d]) => d.type === "positional");
  if (stopAfter === undefined && positionals.length > declared.length && !some(declared, ([, d]) => d.multiple)) {
    fail(`too many arguments for "nsbox ${command}": ${positionals.slice(declared.length).join(" ")} (see: nsbox ${command} --help)`);
  }
  // A command (stopAfter) checks its own required words, with an example of its use.
  if (stopAfter === undefined) {
    const missing = find(declared, ([, d], k) => d.required && positionals.length <= k);
    if (missing) fail(`${requiredWord(missing[0])} is required: nsbox ${command} ${usageWords(declared)} (see: nsbox ${command} --help)`);
  }
  for (const [name, d] of Object.entries(defs)) {
    if (flags[name] === undefined && d.default !== undefined && d.type !== "positional") flags[name] = d.default;
  }
  return { flags, positionals, rest };
}

/** "containers" -> "a container", "action" -> "an action": the word a missing positional stands for. */
function requiredWord(name: string): string {
  const one = name.endsWith("s") ? name.slice(0, -1) : name;
  return `${/^[aeiou]/.test(one) ? "an" : "a"} ${one}`;
}

/** The positionals as usage shows them: CONTAINER... [PODS...] */
function usageWords(declared: [string, FlagDef][]): string {
  return declared
    .map(([n, d]) => {
      const w = (d.multiple && n.endsWith("s") ? n.slice(0, -1) : n).toUpperCase() + (d.multiple ? "..." : "");
      return d.required ? w : `[${w}]`;
    })
    .join(" ");
}

export const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
export const list = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : []);
export const bool = (v: unknown): boolean => v === true;
