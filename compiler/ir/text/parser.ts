import type { ILexingError, IRecognitionException, IToken } from "chevrotain";
import type { Graph, Node, Value } from "../graph.js";
import { verifyGraph, type Diagnostic } from "../../verify.js";
import { buildGraph, type BuiltGraph } from "./builder.js";
import type { TextPos } from "./cst.js";
import { irGrammar } from "./grammar.js";
import { irLexer } from "./lexer.js";

export type { TextPos } from "./cst.js";

/** One problem in an IR text. */
export interface IRDiagnostic {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

export function formatIRDiagnostic(d: IRDiagnostic): string {
  return `${d.file}:${d.line}:${d.col}: error: ${d.message}`;
}

/** Every problem found in an IR text (syntax, semantics, and with parseAndVerify, verification). */
export class IRParseError extends Error {
  constructor(readonly diagnostics: readonly IRDiagnostic[]) {
    super(diagnostics.map(formatIRDiagnostic).join("\n"));
    this.name = "IRParseError";
  }
}

/** A parsed graph with where its parts were written. */
export interface ParsedGraph {
  readonly graph: Graph;
  readonly file: string;
  /** Statement position of each node (a side map: nodes carry no text positions themselves). */
  readonly nodePos: ReadonlyMap<Node, TextPos>;
  /** Definition position of each input, constant and node output. */
  readonly valuePos: ReadonlyMap<Value, TextPos>;
  /** Position of the `graph` keyword. */
  readonly graphPos: TextPos;
}

const DEFAULT_FILE = "<ir>";

function lexDiag(file: string, text: string, e: ILexingError): IRDiagnostic {
  const ch = JSON.stringify(text.slice(e.offset, e.offset + Math.max(1, e.length)));
  return {
    file,
    line: e.line ?? 1,
    col: e.column ?? 1,
    message: `unexpected character${e.length > 1 ? "s" : ""} ${ch}`,
  };
}

function syntaxDiag(file: string, e: IRecognitionException): IRDiagnostic {
  const t = e.token;
  const p = (e as IRecognitionException & { previousToken?: IToken }).previousToken;
  const afterPrev = p !== undefined && p.endLine! > 0;
  // A missing closer is reported where it belongs, after the last token, not on the next line.
  const missing = e.name === "MismatchedTokenException" && afterPrev && t.startLine! > p.endLine!;
  if (t.startLine! > 0 && !missing)
    return { file, line: t.startLine!, col: t.startColumn!, message: e.message };
  return {
    file,
    line: afterPrev ? p.endLine! : 1,
    col: afterPrev ? p.endColumn! + 1 : 1,
    message: e.message,
  };
}

function dedupe(ds: readonly IRDiagnostic[]): IRDiagnostic[] {
  const seen = new Set<string>();
  return ds.filter((d) => {
    const k = formatIRDiagnostic(d);
    return !seen.has(k) && seen.add(k) !== undefined;
  });
}

/** Parse diagnostics come from three sources (lexer, parser, builder); show them in text order. */
function sortDiags(ds: IRDiagnostic[]): IRDiagnostic[] {
  return dedupe(ds.sort((a, b) => a.line - b.line || a.col - b.col));
}

/** Parses a graph, keeping text positions; throws IRParseError listing every problem found. */
export function parseGraphWithPositions(text: string, file = DEFAULT_FILE): ParsedGraph {
  const lexed = irLexer.tokenize(text);
  irGrammar.input = lexed.tokens;
  const cst = irGrammar.graph();
  const diags = [
    ...lexed.errors.map((e) => lexDiag(file, text, e)),
    ...irGrammar.errors.map((e) => syntaxDiag(file, e)),
  ];
  let built: BuiltGraph | undefined;
  if (cst) {
    built = buildGraph(cst);
    for (const d of built.diagnostics) diags.push({ file, ...d.pos, message: d.message });
  }
  if (diags.length || !built) throw new IRParseError(sortDiags(diags));
  return { ...built, file };
}

/** Parses the textual IR (docs/ir.md) into a Graph; throws IRParseError. */
export function parseGraph(text: string, file?: string): Graph {
  return parseGraphWithPositions(text, file).graph;
}

/** Where a verifier diagnostic belongs: its node's own source loc, else where the text defines it. */
function placeVerifyDiag(p: ParsedGraph, d: Diagnostic, producers: ReadonlyMap<Value, Node>): IRDiagnostic {
  if (d.loc?.file !== undefined && d.loc.line !== undefined)
    return { file: d.loc.file, line: d.loc.line, col: d.loc.col ?? 1, message: d.message };
  const v = d.value !== undefined ? p.graph.valueByName(d.value) : undefined;
  const producer = v ? producers.get(v) : undefined;
  const pos = (producer && p.nodePos.get(producer)) ?? (v && p.valuePos.get(v)) ?? p.graphPos;
  const prefix = d.loc?.node !== undefined ? `node '${d.loc.node}': ` : "";
  return { file: p.file, ...pos, message: prefix + d.message };
}

/** Parses, then verifies; verifier problems are reported at IR-text positions. Throws IRParseError. */
export function parseAndVerify(text: string, file?: string): Graph {
  const p = parseGraphWithPositions(text, file);
  const diags = verifyGraph(p.graph);
  if (diags.length) {
    const producers = p.graph.producerMap();
    // Verifier order is graph order, which may mix files (own source locs); keep it.
    throw new IRParseError(dedupe(diags.map((d) => placeVerifyDiag(p, d, producers))));
  }
  return p.graph;
}
