import type { Graph } from "../ir/graph.js";
import { verifyGraph } from "../verify.js";
import { LangError, type LangDiagnostic } from "../../grammar/diagnostics.js";
import { parseProgram } from "../../grammar/visitor.js";
import { Lowerer } from "./lower.js";

/**
 * The `.tokr` frontend: parse (every syntax error), then resolve names, inline blocks and lower
 * to IR (every semantic and shape error, each at its call's line:col), then verify.
 */
export function checkTokr(
  source: string,
  file = "<input>",
): { graph?: Graph; diagnostics: LangDiagnostic[] } {
  const parsed = parseProgram(source);
  if (!parsed.program) return { diagnostics: parsed.diagnostics };
  const lowerer = new Lowerer(parsed.program, file);
  const graph = lowerer.lower();
  const diagnostics = [...lowerer.diags].sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  if (diagnostics.length || !graph) return { diagnostics };
  for (const d of verifyGraph(graph))
    diagnostics.push({
      pos: { line: d.loc?.line ?? 1, col: d.loc?.col ?? 1, len: 1 },
      message: `IR verifier: ${d.message}`,
    });
  return diagnostics.length ? { diagnostics } : { graph, diagnostics };
}

/** Compiles a `.tokr` program to a verified graph or throws a LangError with every diagnostic. */
export function compileTokr(source: string, file = "<input>"): Graph {
  const r = checkTokr(source, file);
  if (!r.graph) throw new LangError(file, source, r.diagnostics);
  return r.graph;
}
