/** What every `tokr` command shares: its declaration, parsed arguments, output streams and errors. */
import { resolve } from "node:path";

/** Where a command writes; tests inject collectors, `main` defaults to the process streams. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Directory relative paths are resolved against (default: the process's). */
  readonly cwd?: string;
}

export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  /** Placeholder shown in help (`FILE`); boolean options have none. */
  readonly arg?: string;
  readonly help: string;
}

/** One command: its options, how many positionals it takes, and what it does. */
export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** The synopsis after `tokr NAME`, e.g. `INPUT --inputs IN.safetensors [-o OUT.safetensors]`. */
  readonly synopsis: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  readonly positionals: { readonly min: number; readonly max: number; readonly names: string };
  run(args: Args, io: CliIO): Promise<void> | void;
}

/** Parsed arguments with typed accessors. */
export class Args {
  constructor(
    readonly command: CommandSpec,
    readonly positionals: readonly string[],
    private readonly values: Readonly<Record<string, string | boolean | undefined>>,
    private readonly cwd: string,
  ) {}

  string(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === "string" ? v : undefined;
  }

  /** A string option the command cannot do without: a usage error when absent. */
  required(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new UsageError(`missing required option --${name}`, this.command);
    return v;
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** An option restricted to a set of words. */
  choice<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const v = this.string(name);
    if (v !== undefined && !(allowed as readonly string[]).includes(v))
      throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, got '${v}'`, this.command);
    return v as T | undefined;
  }

  /** An integer option of at least `min`. */
  int(name: string, min: number): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min)
      throw new UsageError(`--${name} must be an integer >= ${min}, got '${v}'`, this.command);
    return n;
  }

  /** A user-given path resolved against the working directory (messages keep the path as given). */
  path(p: string): string {
    return resolve(this.cwd, p);
  }
}

/** Bad command line: reported with the usage line, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: CommandSpec,
  ) {
    super(message);
    this.name = "UsageError";
  }
}

/** A failure the user can act on (missing file, bad input); exit code 1, no stack trace. */
export class CliError extends Error {
  override name = "CliError";
}

/** `tokr NAME SYNOPSIS` */
export function usageLine(c: CommandSpec): string {
  return `usage: tokr ${c.name} ${c.synopsis}`.trimEnd();
}

/** The `--help` text of one command. */
export function commandHelp(c: CommandSpec): string {
  const rows = Object.entries(c.options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.arg ? ` ${o.arg}` : ""}`;
    return [flag, o.help] as const;
  });
  rows.push(["    --debug", "print stack traces of errors"], ["-h, --help", "show this help"]);
  const width = Math.max(...rows.map(([f]) => f.length));
  return [
    usageLine(c),
    "",
    c.summary,
    "",
    "options:",
    ...rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`),
    "",
  ].join("\n");
}

/** A Node file-system error in words, without the absolute path Node puts in its message. */
export function fsMessage(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  switch (code) {
    case "ENOENT":
      return "no such file or directory";
    case "EISDIR":
      return "is a directory";
    case "ENOTDIR":
      return "a path component is not a directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    default:
      return e instanceof Error ? e.message : String(e);
  }
}
