import { bindInputs, RunError, runGraph } from "../../backends/cpu/interpreter.js";
import { printType, tensorType } from "../ir/types.js";
import type { Tensor } from "../ir/tensor.js";
import { type Args, type CliIO, CliError, type CommandSpec } from "./cli.js";
import { bindWeightsFile, inputKind, loadGraph, readTensors, writeTensors } from "./load.js";
import { applyPolicyOption } from "./policy.js";
import { runCuda } from "./cuda.js";
import { artifactTarget, runWgsl } from "./wgsl.js";

/** Values printed per tensor when no output file is given. */
const PRINT_LIMIT = 16;

/** `tokr run`: executes a model on the CPU reference backend. */
export const runCommand: CommandSpec = {
  name: "run",
  summary:
    "Execute an IR file or a compiled artifact on the reference backend (cpu), on WebGPU (wgsl) or, for a\n" +
    "cuda artifact, on an NVIDIA GPU. Tensors are named by the graph's input and output value names.",
  synopsis:
    "INPUT [--target cpu|wgsl|cuda] [--inputs IN.safetensors] [-o OUT.safetensors] [--weights W.safetensors] [--policy FILE] [--f16]",
  options: {
    inputs: { type: "string", arg: "IN.safetensors", help: "the graph's inputs, by input name" },
    output: {
      type: "string",
      short: "o",
      arg: "OUT.safetensors",
      help: "write the outputs here (else print them)",
    },
    weights: { type: "string", arg: "W.safetensors", help: 'data for ref<"key"> constants, by key' },
    target: {
      type: "string",
      arg: "cpu|wgsl|cuda",
      help: "backend (default: the artifact's, else cpu; cuda runs only cuda artifacts)",
    },
    policy: {
      type: "string",
      arg: "FILE",
      help: "a .tokr policy file: its policies are applied (token-reduction passes) before running",
    },
    f16: { type: "boolean", help: "wgsl: compute the model's f32 tensors in f16 (needs shader-f16)" },
  },
  positionals: { min: 1, max: 1, names: "INPUT" },
  async run(args, io) {
    const input = args.positionals[0];
    const built = artifactTarget(args, input);
    const target =
      args.choice("target", ["cpu", "wgsl", "cuda"] as const) ??
      (built === "wgsl" || built === "cuda" ? built : "cpu");
    if (built !== undefined && built !== "cpu" && built !== target)
      throw new CliError(`${input}: is a ${built} artifact; it cannot run with --target ${target}`);
    if (target === "cuda" && built !== "cuda")
      throw new CliError(
        `${input}: --target cuda runs compiled cuda artifacts; compile it first (tokr compile --target cuda -o DIR)`,
      );
    if ((built === "wgsl" || built === "cuda") && args.string("policy") !== undefined)
      throw new CliError(`${input}: is a compiled ${built} artifact; apply --policy when compiling it`);
    if (built === "cuda") {
      for (const o of ["f16", "weights"])
        if (o === "f16" ? args.flag(o) : args.string(o) !== undefined)
          throw new CliError(`${input}: --${o} is chosen when compiling a cuda artifact`);
      const inputsFile = args.string("inputs");
      const inputs = inputsFile !== undefined ? readTensors(args, inputsFile) : new Map<string, Tensor>();
      return report(args, io, await runCuda(args, input, inputs));
    }
    if (args.flag("f16") && (target !== "wgsl" || built === "wgsl"))
      throw new CliError(
        built === "wgsl"
          ? `${input}: --f16 is chosen when compiling (tokr compile --target wgsl --f16)`
          : "--f16 needs --target wgsl",
      );
    if (target === "wgsl" && built === "wgsl") {
      const inputsFile = args.string("inputs");
      const outputs = await runWgsl(
        args,
        input,
        inputsFile !== undefined ? readTensors(args, inputsFile) : new Map(),
      );
      return report(args, io, outputs);
    }
    const g = loadGraph(args, input);
    applyPolicyOption(args, io, g, inputKind(args, input));
    bindWeightsFile(args, g, args.string("weights"), `running ${input}`);
    const inputsFile = args.string("inputs");
    const inputs: ReadonlyMap<string, Tensor> =
      inputsFile !== undefined ? readTensors(args, inputsFile) : new Map();
    try {
      bindInputs(g, inputs); // checked first so that every message can name the inputs file
    } catch (e) {
      if (!(e instanceof RunError)) throw e;
      const where = inputsFile ?? "inputs (no --inputs file given)";
      throw new CliError(
        e.message
          .split("\n")
          .map((l) => `${where}: ${l}`)
          .join("\n"),
      );
    }
    const outputs =
      target === "wgsl" ? await runWgsl(args, g, inputs, { f16: args.flag("f16") }) : runGraph(g, inputs);
    report(args, io, outputs);
  },
};

function report(args: Args, io: CliIO, outputs: ReadonlyMap<string, Tensor>): void {
  const out = args.string("output");
  if (out !== undefined) writeTensors(args, out, outputs);
  else for (const [name, t] of outputs) io.stdout(`%${name}: ${describe(t)}\n`);
}

function describe(t: Tensor): string {
  const vals = Array.from(t.data.subarray(0, PRINT_LIMIT), (x) => formatValue(t, x));
  const more = t.data.length > PRINT_LIMIT ? `, ... (${t.data.length} values)` : "";
  return `${printType(tensorType(t.dtype, t.shape))} = [${vals.join(", ")}${more}]`;
}

/** f32/f16 values in their shortest round-trip form rather than the f64 expansion. */
function formatValue(t: Tensor, x: number): string {
  if (t.dtype === "bool") return x ? "true" : "false";
  if ((t.dtype !== "f32" && t.dtype !== "f16") || !Number.isFinite(x)) return String(x);
  for (let p = 1; p < 17; p++) {
    const s = Number(x.toPrecision(p));
    if (Math.fround(s) === x) return String(s);
  }
  return String(x);
}
