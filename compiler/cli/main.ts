/**
 * The `tokr` command line. `main` takes argv without the node and script paths and returns the
 * exit code: 0 success, 1 error, 2 usage error. Streams are injectable so tests run it in-process.
 */
import { parseArgs } from "node:util";
import { benchCommand } from "./bench.js";
import { checkCommand } from "./check.js";
import { Args, type CliIO, commandHelp, type CommandSpec, UsageError, usageLine } from "./cli.js";
import { compileCommand } from "./compile.js";
import { fmtCommand } from "./fmt.js";
import { importCommand } from "./import.js";
import { inspectCommand } from "./inspect.js";
import { passesCommand } from "./passes.js";
import { printCommand } from "./print.js";
import { errorLines } from "./report.js";
import { runCommand } from "./run.js";

export type { CliIO } from "./cli.js";

export const COMMANDS: readonly CommandSpec[] = [
  runCommand,
  compileCommand,
  inspectCommand,
  printCommand,
  passesCommand,
  checkCommand,
  importCommand,
  benchCommand,
  fmtCommand,
];

const processIO: CliIO = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
};

/** `tokr --help`. */
export function generalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "usage: tokr COMMAND [ARGS...]",
    "",
    "A compiler for token-efficient transformer inference.",
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary.split("\n")[0]}`),
    "",
    "Run 'tokr COMMAND --help' for a command's options; --debug prints stack traces of errors.",
    "",
  ].join("\n");
}

/** Runs one tokr command line; never throws, never exits the process. */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  // `--debug` may also come before the command.
  const debugFirst = argv[0] === "--debug";
  const [name, ...given] = debugFirst ? argv.slice(1) : argv;
  const rest = debugFirst ? [...given, "--debug"] : given;
  if (name === undefined) {
    io.stderr(generalHelp());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const c = COMMANDS.find((x) => x.name === rest[0]);
    io.stdout(c ? commandHelp(c) : generalHelp());
    return 0;
  }
  const debug = rest.includes("--debug");
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (!command)
      throw new UsageError(`unknown command '${name}' (commands: ${COMMANDS.map((c) => c.name).join(", ")})`);
    const args = parseCommandLine(command, rest, io.cwd ?? process.cwd());
    if (args.flag("help")) {
      io.stdout(commandHelp(command));
      return 0;
    }
    await command.run(args, io);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`tokr: error: ${e.message}\n`);
      const c = e.command ?? command;
      io.stderr(
        c
          ? `${usageLine(c)}\nRun 'tokr ${c.name} --help' for details.\n`
          : "Run 'tokr --help' for the commands.\n",
      );
      return 2;
    }
    io.stderr(errorLines(e, debug).join("\n") + "\n");
    if (debug && e instanceof Error && e.stack) io.stderr(`${e.stack}\n`);
    return 1;
  }
}

function parseCommandLine(command: CommandSpec, rest: readonly string[], cwd: string): Args {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...rest],
      options: {
        ...command.options,
        help: { type: "boolean", short: "h" },
        debug: { type: "boolean" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError(argsMessage(e), command);
  }
  const values: Record<string, string | boolean | undefined> = {};
  for (const [k, v] of Object.entries(parsed.values)) values[k] = Array.isArray(v) ? v[v.length - 1] : v;
  const args = new Args(command, parsed.positionals, values, cwd);
  if (args.flag("help")) return args;
  const { min, max, names } = command.positionals;
  const n = parsed.positionals.length;
  if (n < min) throw new UsageError(`missing ${names}`, command);
  if (n > max) throw new UsageError(`unexpected argument '${parsed.positionals[max]}'`, command);
  return args;
}

/** util.parseArgs messages, shortened to the part a user needs. */
function argsMessage(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  const msg = e instanceof Error ? e.message : String(e);
  const opt = /'(-[^' ]*)/.exec(msg)?.[1] ?? "";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option '${opt}'`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const long = /--[\w-]+/.exec(msg)?.[0] ?? opt;
    return msg.includes("argument missing")
      ? `option '${long}' needs a value`
      : `option '${long}' takes no value`;
  }
  return msg;
}
