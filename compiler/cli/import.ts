import { type CommandSpec, UsageError } from "./cli.js";
import { inputKind } from "./load.js";
import { notImplemented } from "./pending.js";

/** `tokr import`: ONNX to IR (the importer comes with its issue). */
export const importCommand: CommandSpec = {
  name: "import",
  summary: "Import an ONNX model into the IR.",
  synopsis: "MODEL.onnx [--print-ir] [-o OUT.ir]",
  options: {
    "print-ir": { type: "boolean", help: "print the imported IR" },
    output: { type: "string", short: "o", arg: "OUT.ir", help: "write the imported IR here" },
  },
  positionals: { min: 1, max: 1, names: "MODEL.onnx" },
  run(args) {
    const file = args.positionals[0];
    if (!file.endsWith(".onnx")) throw new UsageError(`expected a .onnx file, got '${file}'`, importCommand);
    if (!args.flag("print-ir") && args.string("output") === undefined)
      throw new UsageError("nothing to do: pass --print-ir and/or -o OUT.ir", importCommand);
    inputKind(args, file);
    throw notImplemented("onnx", `${file}: importing ONNX models`);
  },
};
