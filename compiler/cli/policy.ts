import type { Graph } from "../ir/graph.js";
import { attachPolicyFile } from "../lang/check.js";
import { PassManager } from "../../passes/manager.js";
import { type Args, type CliIO, UsageError } from "./cli.js";
import { type InputKind, readText } from "./load.js";

/**
 * `--policy FILE`: checks the `.tokr` policy file against `g` and attaches its policies (IR
 * policy objects on the site nodes; errors are a LangError). Returns whether a policy was given.
 * `tokr check` stops here; compile, run and inspect go on with `applyPolicyOption`.
 */
export function attachPolicyOption(args: Args, io: CliIO, g: Graph): boolean {
  const file = args.string("policy");
  if (file === undefined) return false;
  attachPolicyFile(g, readText(args, file), file);
  const sites = g.nodes.filter((n) => n.policy !== undefined).length;
  io.stderr(`tokr: note: ${file}: ${g.policies.size} policy object(s) attached to ${sites} site(s)\n`);
  return true;
}

/**
 * Imported ONNX models get `onnx-structure` first, so that their blocks are named `blocks.K` and
 * policies address them as they address `.tokr` models.
 */
export function prepareForPolicies(g: Graph, kind: InputKind): void {
  if (kind === "onnx") new PassManager("onnx-structure").run(g);
}

/**
 * `--policy FILE` on compile, run and inspect: attaches the policies and applies them with the
 * `reduce` pipeline (token-reduction passes; errors name the site and the policy rule).
 * `kind` undefined: the graph was prepared already (`prepareForPolicies`). Returns whether a
 * policy was applied.
 */
export function applyPolicyOption(args: Args, io: CliIO, g: Graph, kind: InputKind | undefined): boolean {
  const file = args.string("policy");
  if (file === undefined) return false;
  if (kind !== undefined) prepareForPolicies(g, kind);
  attachPolicyFile(g, readText(args, file), file);
  const pm = new PassManager("reduce");
  pm.run(g);
  const applied = g.nodes.filter((n) => n.policy !== undefined && n.op.startsWith("tokens.")).length;
  const kv = [...g.policies.values()].filter((p) => p.params.kind === "kv").length;
  // No pass applies kv policies yet: say so rather than let the note suggest they were applied.
  const kvNote = kv ? `; ${kv} kv policy object(s) stay attached, not applied (no kv-cache pass yet)` : "";
  io.stderr(
    `tokr: note: ${file}: ${g.policies.size - kv} policy object(s) applied (${applied} reduction node(s))${kvNote}\n`,
  );
  return true;
}

/** `--bind N=197,B=1`: symbol bindings for reports. */
export function parseBindings(args: Args): Map<string, number> {
  const text = args.string("bind");
  const out = new Map<string, number>();
  if (text === undefined) return out;
  for (const part of text.split(",")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\d+)\s*$/.exec(part);
    if (!m)
      throw new UsageError(`--bind takes SYMBOL=INT pairs separated by commas, got '${part}'`, args.command);
    out.set(m[1], Number(m[2]));
  }
  return out;
}
