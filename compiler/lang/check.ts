import type { Graph } from "../ir/graph.js";
import { verifyGraph } from "../verify.js";
import { LangError, type LangDiagnostic } from "../../grammar/diagnostics.js";
import { parseProgram } from "../../grammar/visitor.js";
import { Lowerer } from "./lower.js";
import { applyPolicies, checkPolicyParams } from "./policy.js";
import { resolveNames } from "./resolve.js";

/**
 * The `.tokr` frontend: parse (every syntax error); then static name resolution over the whole
 * program (resolve.ts) and lowering to IR (lower.ts: block inlining, repeat, shape errors at the
 * call's line:col), their diagnostics merged; then the IR verifier; then the file's policies are
 * checked and attached (policy.ts). A file of policies only has their parameters checked.
 */
export function checkTokr(
  source: string,
  file = "<input>",
): { graph?: Graph; diagnostics: LangDiagnostic[] } {
  const parsed = parseProgram(source);
  if (!parsed.program) return { diagnostics: parsed.diagnostics };
  if (parsed.program.items.every((it) => it.k === "policy") && parsed.program.items.length)
    return { diagnostics: checkPolicyParams(parsed.program) };
  const lowerer = new Lowerer(parsed.program, file);
  const graph = lowerer.lower();
  // Name errors found by both passes appear once; the static pass adds those in code never lowered.
  const seen = new Map<string, LangDiagnostic>();
  for (const d of [...resolveNames(parsed.program), ...lowerer.diags])
    seen.set(`${d.pos.line}:${d.pos.col}:${d.message}`, d);
  const diagnostics = [...seen.values()].sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  if (diagnostics.length || !graph) return { diagnostics };
  for (const d of verifyGraph(graph))
    diagnostics.push({
      pos: { line: d.loc?.line ?? 1, col: d.loc?.col ?? 1, len: 1 },
      message: `IR verifier: ${d.message}`,
    });
  if (diagnostics.length) return { diagnostics };
  const policyDiags = applyPolicies(graph, parsed.program, file);
  return policyDiags.length ? { diagnostics: policyDiags } : { graph, diagnostics };
}

/**
 * Attaches the policies of a separate policy file to `g` (any graph: .tokr, .ir or ONNX), or
 * throws a LangError with every diagnostic. The file may hold only `policy` items.
 */
export function attachPolicyFile(g: Graph, source: string, file = "<policy>"): void {
  const parsed = parseProgram(source);
  if (!parsed.program) throw new LangError(file, source, parsed.diagnostics);
  const others = parsed.program.items.filter((it) => it.k !== "policy");
  const diagnostics: LangDiagnostic[] = others.map((it) => ({
    pos: it.name.pos,
    message: `a policy file holds only policies, but '${it.name.name}' is a ${it.k}`,
  }));
  if (!parsed.program.items.some((it) => it.k === "policy"))
    diagnostics.push({ pos: { line: 1, col: 1, len: 1 }, message: "the file defines no policy" });
  if (!diagnostics.length) diagnostics.push(...applyPolicies(g, parsed.program, file));
  if (diagnostics.length) throw new LangError(file, source, diagnostics);
}

/** Compiles a `.tokr` program to a verified graph or throws a LangError with every diagnostic. */
export function compileTokr(source: string, file = "<input>"): Graph {
  const r = checkTokr(source, file);
  if (!r.graph) throw new LangError(file, source, r.diagnostics);
  return r.graph;
}
