/** How errors reach the user: located diagnostics as `file:line:col: error: msg`, the rest as `tokr: error: msg`. */
import { formatLoc, type SourceLoc } from "../ir/graph.js";
import { formatIRDiagnostic, IRParseError } from "../ir/text/parser.js";
import { VerifyError } from "../verify.js";
import { PassError } from "../../passes/manager.js";
import { formatLangError, LangError } from "../../grammar/diagnostics.js";

interface DiagnosticLike {
  readonly message: string;
  readonly loc?: SourceLoc;
  readonly value?: string;
}

/** A line that already names its location (`file:12:3: error: ...`) is printed as is. */
const LOCATED = /^\S[^\n]*?:\d+:\d+:( node '[^']*':)? error: /;

function diagnosticLine(d: DiagnosticLike): string {
  const where = formatLoc(d.loc);
  if (where) return `${where}: error: ${d.message}`;
  return `tokr: error: ${d.value !== undefined ? `%${d.value}: ` : ""}${d.message}`;
}

function messageLines(message: string): string[] {
  return message.split("\n").map((l) => (LOCATED.test(l) ? l : `tokr: error: ${l}`));
}

/** The stderr lines for an error (without a stack trace). */
export function errorLines(e: unknown, debug = false): string[] {
  if (e instanceof PassError) {
    // The message repeats the diagnostics and appends the IR dump; the dump is for --debug.
    const head = `tokr: error: ${e.message.split("\n")[0]}`;
    const rest = e.diagnostics.length ? e.diagnostics.map(diagnosticLine) : messageLines(e.message).slice(1);
    return [head, ...rest, ...(debug && e.dump ? [e.dump] : [])];
  }
  if (e instanceof LangError) return formatLangError(e);
  if (e instanceof IRParseError) return e.diagnostics.map(formatIRDiagnostic);
  if (e instanceof VerifyError) return e.diagnostics.map(diagnosticLine);
  if (e instanceof Error) return messageLines(e.message);
  return messageLines(String(e));
}
