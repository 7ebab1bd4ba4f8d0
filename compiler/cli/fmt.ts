import { writeFileSync } from "node:fs";
import { LangError } from "../../grammar/diagnostics.js";
import { formatProgram } from "../../grammar/format.js";
import { parseProgram } from "../../grammar/visitor.js";
import { type CommandSpec, UsageError } from "./cli.js";
import { inputKind, readText } from "./load.js";

/** `tokr fmt`: the canonical layout of a .tokr file (grammar/format.ts), to stdout or in place. */
export const fmtCommand: CommandSpec = {
  name: "fmt",
  summary: "Print a .tokr file in canonical layout (comments kept); --write rewrites the file.",
  synopsis: "FILE.tokr [--write]",
  options: { write: { type: "boolean", help: "rewrite the file instead of printing it" } },
  positionals: { min: 1, max: 1, names: "FILE.tokr" },
  run(args, io) {
    const file = args.positionals[0];
    if (!file.endsWith(".tokr")) throw new UsageError(`expected a .tokr file, got '${file}'`, fmtCommand);
    inputKind(args, file);
    const source = readText(args, file);
    const parsed = parseProgram(source);
    if (!parsed.program) throw new LangError(file, source, parsed.diagnostics);
    const text = formatProgram(parsed.program);
    if (args.flag("write")) writeFileSync(args.path(file), text);
    else io.stdout(text);
  },
};
