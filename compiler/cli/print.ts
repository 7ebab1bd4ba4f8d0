import { printGraph } from "../ir/text/printer.js";
import type { CommandSpec } from "./cli.js";
import { loadGraph } from "./load.js";

/** `tokr print`: parse and verify an IR file (or compile a .tokr program) and print canonical IR text. */
export const printCommand: CommandSpec = {
  name: "print",
  summary: "Parse and verify an IR file (or compile a .tokr program), then print canonical IR text.",
  synopsis: "FILE.ir|FILE.tokr",
  options: {},
  positionals: { min: 1, max: 1, names: "FILE.ir|FILE.tokr" },
  run(args, io) {
    io.stdout(printGraph(loadGraph(args, args.positionals[0], false)));
  },
};
