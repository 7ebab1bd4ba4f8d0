import { LangError } from "../../grammar/diagnostics.js";
import { checkTokr } from "../lang/check.js";
import { type CommandSpec, UsageError } from "./cli.js";
import { inputKind, readText } from "./load.js";

/** `tokr check`: parse, resolve, lower and verify a .tokr program; every diagnostic, exit 1 on any. */
export const checkCommand: CommandSpec = {
  name: "check",
  summary: "Parse and type-check a .tokr program, reporting every diagnostic.",
  synopsis: "FILE.tokr",
  options: {},
  positionals: { min: 1, max: 1, names: "FILE.tokr" },
  run(args) {
    const file = args.positionals[0];
    if (!file.endsWith(".tokr")) throw new UsageError(`expected a .tokr file, got '${file}'`, checkCommand);
    inputKind(args, file); // a missing file is reported as such
    const source = readText(args, file);
    const r = checkTokr(source, file);
    if (r.diagnostics.length) throw new LangError(file, source, r.diagnostics);
  },
};
