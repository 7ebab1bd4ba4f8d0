import type { Graph } from "../ir/graph.js";
import { attachPolicyFile } from "../lang/check.js";
import type { Args, CliIO } from "./cli.js";
import { readText } from "./load.js";
import { PENDING } from "./pending.js";

/**
 * `--policy FILE`: checks the `.tokr` policy file against `g` and attaches its policies (IR
 * policy objects on the site nodes; errors are a LangError). Nothing is rewritten yet: the note
 * on stderr says so, naming the issue of the reduction passes. Returns whether a policy was given.
 */
export function attachPolicyOption(args: Args, io: CliIO, g: Graph): boolean {
  const file = args.string("policy");
  if (file === undefined) return false;
  attachPolicyFile(g, readText(args, file), file);
  const sites = g.nodes.filter((n) => n.policy !== undefined).length;
  const p = PENDING.policy;
  io.stderr(
    `tokr: note: ${file}: ${g.policies.size} policy object(s) attached to ${sites} site(s); ` +
      `not applied yet (issue #${p.issue}: ${p.what})\n`,
  );
  return true;
}
