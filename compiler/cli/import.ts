import { writeFileSync } from "node:fs";
import type { Graph } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { printGraph } from "../ir/text/printer.js";
import { CliError, type CommandSpec, fsMessage, UsageError } from "./cli.js";
import { inputKind, loadOnnx, writeTensors } from "./load.js";

/** Constants larger than this print as `ref<"name">` with --print-ir (the weights stay in the model). */
const PRINT_ELIDE_OVER = 64;

/**
 * The data of an imported model's constants (ONNX initializers and `Constant` node outputs),
 * keyed by their ONNX name, in graph order: what `.tokr` `file(key: ...)` parameters bind to.
 */
export function onnxWeights(g: Graph): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [v, c] of g.constants) if (c.data) out.set(c.ref ?? v.name, c.data);
  return out;
}

/** `tokr import`: ONNX to IR. */
export const importCommand: CommandSpec = {
  name: "import",
  summary: "Import an ONNX model into the IR.",
  synopsis: "MODEL.onnx [--print-ir] [-o OUT.ir] [--weights-out W.safetensors]",
  options: {
    "print-ir": {
      type: "boolean",
      help: `print the imported IR (constants over ${PRINT_ELIDE_OVER} elements as ref<"name">)`,
    },
    output: { type: "string", short: "o", arg: "OUT.ir", help: "write the imported IR here, weights inline" },
    "weights-out": {
      type: "string",
      arg: "W.safetensors",
      help: "write the initializers and Constant-node tensors here, keyed by ONNX name",
    },
  },
  positionals: { min: 1, max: 1, names: "MODEL.onnx" },
  run(args, io) {
    const file = args.positionals[0];
    if (!file.endsWith(".onnx")) throw new UsageError(`expected a .onnx file, got '${file}'`, importCommand);
    const out = args.string("output");
    const weightsOut = args.string("weights-out");
    if (!args.flag("print-ir") && out === undefined && weightsOut === undefined)
      throw new UsageError(
        "nothing to do: pass --print-ir, -o OUT.ir and/or --weights-out W.safetensors",
        importCommand,
      );
    inputKind(args, file);
    const g = loadOnnx(args, file);
    if (out !== undefined) {
      try {
        writeFileSync(args.path(out), printGraph(g));
      } catch (e) {
        throw new CliError(`${out}: cannot write file: ${fsMessage(e)}`);
      }
    }
    if (weightsOut !== undefined) writeTensors(args, weightsOut, onnxWeights(g));
    if (args.flag("print-ir")) io.stdout(printGraph(g, { elideConstantsOver: PRINT_ELIDE_OVER }));
  },
};
