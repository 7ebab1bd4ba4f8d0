import { CliError, type CommandSpec } from "./cli.js";
import { TARGETS } from "./compile.js";
import { inputKind } from "./load.js";

/**
 * `tokr bench`: timing one model with and without a token-reduction policy (issue #6's benchmark;
 * the arguments are fixed here). The WGSL vs onnxruntime benchmark of
 * issue #5 is `npm run bench` (bench/webgpu.ts), which this command points at.
 */
export const benchCommand: CommandSpec = {
  name: "bench",
  summary: "Time a model with and without token reduction, side by side in one run.",
  synopsis:
    "INPUT [--target cpu|wgsl|cuda] [--policy FILE] [--batch N] [--iterations N] [--warmup N] [--json]",
  options: {
    target: { type: "string", arg: "cpu|wgsl|cuda", help: "backend to time (default cpu)" },
    policy: { type: "string", arg: "FILE", help: "token-reduction policy to compare against the full model" },
    batch: { type: "string", arg: "N", help: "batch size (default 1)" },
    iterations: { type: "string", arg: "N", help: "timed runs (default 10)" },
    warmup: { type: "string", arg: "N", help: "untimed runs first (default 2)" },
    json: { type: "boolean", help: "print the results as JSON" },
  },
  positionals: { min: 1, max: 1, names: "INPUT" },
  run(args) {
    args.choice("target", TARGETS);
    args.int("batch", 1);
    args.int("iterations", 1);
    args.int("warmup", 0);
    inputKind(args, args.positionals[0]);
    throw new CliError(
      "bench: timing a model with and without a token-reduction policy is not implemented yet " +
        "(issue #6's benchmark). For tokr WGSL vs onnxruntime's WebGPU execution provider (matmul, " +
        "the Fashion-MNIST ViT, vit_b_16, compile time) run `npm run bench` (bench/webgpu.ts; results " +
        "in bench/README.md)",
    );
  },
};
