import { type CommandSpec, CliError } from "./cli.js";
import { writeArtifact } from "./artifact.js";
import { bindWeightsFile, inputKind, loadGraph } from "./load.js";
import { applyPolicyOption } from "./policy.js";
import { compileCuda } from "./cuda.js";
import { compileWgsl } from "./wgsl.js";

export const TARGETS = ["cpu", "wgsl", "cuda"] as const;

/** `tokr compile`: writes an artifact directory for a target. */
export const compileCommand: CommandSpec = {
  name: "compile",
  summary:
    "Compile a model into an artifact directory. For --target cpu: graph.ir (large constants as ref<>),\n" +
    "weights.safetensors and manifest.json; for --target wgsl: manifest.json (the scheduled program),\n" +
    "kernels/*.wgsl and weights.safetensors. Both run with `tokr run DIR`. For --target cuda (needs nvcc):\n" +
    "<name>.cu, <name>.fatbin (sm_80, sm_90), resources.json, weights.safetensors and manifest.json.",
  synopsis:
    "INPUT --target cpu|wgsl|cuda -o DIR [--policy FILE] [--weights W.safetensors] [--f16] [--bf16] [--portable]",
  options: {
    target: { type: "string", arg: "cpu|wgsl|cuda", help: "backend to compile for" },
    output: { type: "string", short: "o", arg: "DIR", help: "artifact directory to write" },
    policy: {
      type: "string",
      arg: "FILE",
      help: "a .tokr policy file: its policies are checked and applied (token-reduction passes)",
    },
    weights: { type: "string", arg: "W.safetensors", help: 'data for ref<"key"> constants, by key' },
    f16: {
      type: "boolean",
      help: "wgsl, cuda: store and compute f32 tensors in f16 (wgsl: needs shader-f16)",
    },
    bf16: {
      type: "boolean",
      help: "cuda: store and compute f32 tensors in bf16 (__nv_bfloat16; sums accumulate in f32)",
    },
    portable: {
      type: "boolean",
      help: "wgsl: compile for WebGPU's default limits (runs anywhere), not the local adapter's",
    },
  },
  positionals: { min: 1, max: 1, names: "INPUT" },
  async run(args, io) {
    const input = args.positionals[0];
    const target = args.choice("target", TARGETS);
    if (target === undefined) args.required("target");
    const dir = args.required("output");
    const kind = inputKind(args, input);
    if (kind === "artifact") throw new CliError(`${input}: is already a compiled artifact`);
    const g = loadGraph(args, input);
    applyPolicyOption(args, io, g, kind);
    bindWeightsFile(args, g, args.string("weights"), `compiling ${input}`);
    if (target !== "wgsl" && args.flag("portable")) throw new CliError("--portable needs --target wgsl");
    if (target === "cpu" && args.flag("f16")) throw new CliError("--f16 needs --target wgsl or cuda");
    if (target !== "cuda" && args.flag("bf16"))
      throw new CliError(`--bf16 needs --target cuda${target === "wgsl" ? " (WGSL has no bf16 type)" : ""}`);
    if (target === "wgsl")
      await compileWgsl(args, io, g, dir, input, { f16: args.flag("f16"), portable: args.flag("portable") });
    else if (target === "cuda") compileCuda(args, g, dir, { f16: args.flag("f16"), bf16: args.flag("bf16") });
    else writeArtifact(args, dir, g, input);
  },
};
