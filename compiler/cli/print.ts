import { printGraph } from "../ir/text/printer.js";
import type { CommandSpec } from "./cli.js";
import { loadIR } from "./load.js";

/** `tokr print`: parse, verify and print an IR file in canonical form. */
export const printCommand: CommandSpec = {
  name: "print",
  summary: "Parse and verify an IR file, then print it in canonical form.",
  synopsis: "FILE.ir",
  options: {},
  positionals: { min: 1, max: 1, names: "FILE.ir" },
  run(args, io) {
    io.stdout(printGraph(loadIR(args, args.positionals[0])));
  },
};
