import { writeFileSync } from "node:fs";
import { printGraph } from "../ir/text/printer.js";
import { CliError, type CommandSpec, fsMessage, UsageError } from "./cli.js";
import { inputKind, loadOnnx } from "./load.js";

/** Constants larger than this print as `ref<"name">` with --print-ir (the weights stay in the model). */
const PRINT_ELIDE_OVER = 64;

/** `tokr import`: ONNX to IR. */
export const importCommand: CommandSpec = {
  name: "import",
  summary: "Import an ONNX model into the IR.",
  synopsis: "MODEL.onnx [--print-ir] [-o OUT.ir]",
  options: {
    "print-ir": {
      type: "boolean",
      help: `print the imported IR (constants over ${PRINT_ELIDE_OVER} elements as ref<"name">)`,
    },
    output: { type: "string", short: "o", arg: "OUT.ir", help: "write the imported IR here, weights inline" },
  },
  positionals: { min: 1, max: 1, names: "MODEL.onnx" },
  run(args, io) {
    const file = args.positionals[0];
    if (!file.endsWith(".onnx")) throw new UsageError(`expected a .onnx file, got '${file}'`, importCommand);
    const out = args.string("output");
    if (!args.flag("print-ir") && out === undefined)
      throw new UsageError("nothing to do: pass --print-ir and/or -o OUT.ir", importCommand);
    inputKind(args, file);
    const g = loadOnnx(args, file);
    if (out !== undefined) {
      try {
        writeFileSync(args.path(out), printGraph(g));
      } catch (e) {
        throw new CliError(`${out}: cannot write file: ${fsMessage(e)}`);
      }
    }
    if (args.flag("print-ir")) io.stdout(printGraph(g, { elideConstantsOver: PRINT_ELIDE_OVER }));
  },
};
