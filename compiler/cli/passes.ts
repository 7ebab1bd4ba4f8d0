import { PassManager, PipelineError } from "../../passes/manager.js";
import { allPasses, allPipelines } from "../../passes/registry.js";
import { printGraph } from "../ir/text/printer.js";
import { type CommandSpec, UsageError } from "./cli.js";
import { loadIR } from "./load.js";

/** `tokr passes`: run a pass pipeline over an IR file and print the result. */
export const passesCommand: CommandSpec = {
  name: "passes",
  summary:
    "Run a comma-separated pass pipeline over an IR file (verifying after each pass) and print the result.",
  synopsis: "FILE.ir --pipeline a,b [--timings] | --list",
  options: {
    pipeline: { type: "string", arg: "a,b", help: "passes and named pipelines, in order" },
    timings: { type: "boolean", help: "report each pass's time on stderr" },
    list: { type: "boolean", help: "list the registered passes and pipelines" },
  },
  positionals: { min: 0, max: 1, names: "FILE.ir" },
  run(args, io) {
    if (args.flag("list")) {
      for (const p of allPasses()) io.stdout(`${p.name}: ${p.description}\n`);
      for (const p of allPipelines())
        io.stdout(`${p.name} (pipeline: ${p.passes.join(",")}): ${p.description}\n`);
      return;
    }
    const file = args.positionals[0];
    if (file === undefined) throw new UsageError("missing FILE.ir", passesCommand);
    let pm: PassManager;
    try {
      pm = new PassManager(args.required("pipeline"));
    } catch (e) {
      if (e instanceof PipelineError) throw new UsageError(`--pipeline: ${e.message}`, passesCommand);
      throw e;
    }
    const g = loadIR(args, file);
    pm.run(g);
    io.stdout(printGraph(g));
    if (args.flag("timings")) io.stderr(pm.formatTimings() + "\n");
  },
};
