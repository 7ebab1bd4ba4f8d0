import { LangError } from "../../grammar/diagnostics.js";
import { checkTokr } from "../lang/check.js";
import { type CommandSpec, UsageError } from "./cli.js";
import { inputKind, readText } from "./load.js";
import { attachPolicyOption } from "./policy.js";

/**
 * `tokr check`: parse, resolve, lower and verify a .tokr program and check its policies (and those
 * of `--policy FILE` against the model); every diagnostic, exit 1 on any.
 */
export const checkCommand: CommandSpec = {
  name: "check",
  summary: "Parse and type-check a .tokr program and its policies, reporting every diagnostic.",
  synopsis: "FILE.tokr [--policy POLICY.tokr]",
  options: {
    policy: { type: "string", arg: "FILE", help: "a .tokr policy file to check against the model" },
  },
  positionals: { min: 1, max: 1, names: "FILE.tokr" },
  run(args, io) {
    const file = args.positionals[0];
    if (!file.endsWith(".tokr")) throw new UsageError(`expected a .tokr file, got '${file}'`, checkCommand);
    inputKind(args, file); // a missing file is reported as such
    const source = readText(args, file);
    const r = checkTokr(source, file);
    if (r.diagnostics.length) throw new LangError(file, source, r.diagnostics);
    if (r.graph) attachPolicyOption(args, io, r.graph);
    else if (args.string("policy") !== undefined)
      throw new UsageError(`${file} defines no model to check the policy against`, checkCommand);
  },
};
