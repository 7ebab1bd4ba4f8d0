import type { Pos } from "./ast.js";

/** A problem in a `.tokr` file, with an optional hint ("did you mean `heads`?"). */
export interface LangDiagnostic {
  readonly pos: Pos;
  readonly message: string;
  readonly hint?: string;
}

/** Thrown by the frontend when a program has errors; carries every diagnostic of the run. */
export class LangError extends Error {
  override name = "LangError";
  constructor(
    readonly file: string,
    readonly source: string,
    readonly diagnostics: readonly LangDiagnostic[],
  ) {
    super(diagnostics.map((d) => `${file}:${d.pos.line}:${d.pos.col}: error: ${d.message}`).join("\n"));
  }
}

/**
 * `file:line:col: error: message`, then the source line, a caret line under the span, and the
 * hint if any (lines of the returned array, no trailing newline).
 */
export function formatDiagnostic(file: string, source: string, d: LangDiagnostic): string[] {
  const out = [`${file}:${d.pos.line}:${d.pos.col}: error: ${d.message}`];
  const line = source.split(/\r?\n/)[d.pos.line - 1];
  if (line !== undefined) {
    const width = Math.max(1, Math.min(d.pos.len, line.length - d.pos.col + 1));
    out.push(`    ${line}`, `    ${" ".repeat(d.pos.col - 1)}${"^".repeat(width)}`);
  }
  if (d.hint) out.push(`  hint: ${d.hint}`);
  return out;
}

/** Every diagnostic of an error, formatted, in source order. */
export function formatLangError(e: LangError): string[] {
  return e.diagnostics.flatMap((d) => formatDiagnostic(e.file, e.source, d));
}

/** Edit distance counting insertions, deletions, substitutions and adjacent swaps (`axsi` → `axis` is 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.length][b.length];
}

/** "did you mean `x`?" for the closest candidate (first on ties) within max(1, len/3) edits, else undefined. */
export function didYouMean(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best === undefined ? undefined : `did you mean \`${best}\`?`;
}
