import { type CommandSpec, UsageError } from "./cli.js";
import { inputKind } from "./load.js";
import { notImplemented } from "./pending.js";

/** `tokr check`: type-check a .tokr program (the frontend comes with its issue). */
export const checkCommand: CommandSpec = {
  name: "check",
  summary: "Parse and type-check a .tokr program, reporting every diagnostic.",
  synopsis: "FILE.tokr",
  options: {},
  positionals: { min: 1, max: 1, names: "FILE.tokr" },
  run(args) {
    const file = args.positionals[0];
    if (!file.endsWith(".tokr")) throw new UsageError(`expected a .tokr file, got '${file}'`, checkCommand);
    inputKind(args, file); // a missing file is reported before the missing feature
    throw notImplemented("tokr", `${file}: checking .tokr files`);
  },
};
