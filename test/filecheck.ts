/**
 * A small subset of LLVM FileCheck for pass tests: `CHECK:`, `CHECK-NEXT:`, `CHECK-SAME:`,
 * `CHECK-NOT:` and `CHECK-LABEL:` directives, substring patterns with `{{regex}}` segments,
 * and runs of blanks matching any run of blanks.
 */

export class FileCheckError extends Error {}

const KINDS = ["CHECK", "CHECK-NEXT", "CHECK-SAME", "CHECK-NOT", "CHECK-LABEL"] as const;
type Kind = (typeof KINDS)[number];

interface Directive {
  readonly kind: Kind;
  readonly text: string;
  readonly re: RegExp;
  /** 1-based line in the check text. */
  readonly line: number;
}

interface Match {
  readonly start: number;
  readonly end: number;
}

export interface CheckOptions {
  /** Prefix for messages (`file:line: error: ...`); line numbers count lines of the check text. */
  readonly file?: string;
}

/** Parses the directives of a check text; throws on unknown `CHECK-*:` spellings and bad patterns. */
export function parseChecks(checkText: string, opts: CheckOptions = {}): Directive[] {
  const out: Directive[] = [];
  checkText.split("\n").forEach((lineText, i) => {
    const m = /\b(CHECK(?:-[A-Z]+)?):(.*)$/.exec(lineText);
    if (!m) return;
    const where = `${opts.file ?? "check"}:${i + 1}`;
    const kind = m[1];
    if (!(KINDS as readonly string[]).includes(kind))
      throw new FileCheckError(
        `${where}: error: unknown directive '${kind}:' (supported: ${KINDS.join(", ")})`,
      );
    const text = m[2].trim();
    if (text === "") throw new FileCheckError(`${where}: error: ${kind}: empty pattern`);
    out.push({ kind: kind as Kind, text, re: compile(text, where), line: i + 1 });
  });
  return out;
}

/** Literal text with blank runs made flexible, `{{re}}` segments spliced in as regex. */
function compile(pattern: string, where: string): RegExp {
  let src = "";
  let last = 0;
  for (const m of pattern.matchAll(/\{\{(.*?)\}\}/g)) {
    src += literal(pattern.slice(last, m.index)) + `(?:${m[1]})`;
    last = m.index + m[0].length;
  }
  src += literal(pattern.slice(last));
  try {
    return new RegExp(src, "g");
  } catch (e) {
    throw new FileCheckError(
      `${where}: error: bad regex in '${pattern}': ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

function literal(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&").replace(/[ \t]+/g, "[ \\t]+");
}

/** The output as lines with start offsets, for line lookups and region excerpts. */
class Text {
  readonly starts: number[] = [0];
  constructor(readonly s: string) {
    for (let i = 0; i < s.length; i++) if (s[i] === "\n") this.starts.push(i + 1);
  }
  /** 0-based line holding offset `o`. */
  lineOf(o: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= o) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  lineEnd(l: number): number {
    return l + 1 < this.starts.length ? this.starts[l + 1] - 1 : this.s.length;
  }
  /** Numbered lines `from..to` (0-based, inclusive), the `mark` line flagged, long regions cut. */
  excerpt(from: number, to: number, mark?: number): string {
    const MAX = 40;
    const lines: string[] = [];
    for (let l = from; l <= to && l < from + MAX; l++) {
      const body = this.s.slice(this.starts[l], this.lineEnd(l));
      lines.push(`${l === mark ? ">" : " "}${String(l + 1).padStart(5)} | ${body}`);
    }
    if (to - from + 1 > MAX) lines.push(`       ... ${to - from + 1 - MAX} more lines`);
    return lines.join("\n");
  }
}

function find(re: RegExp, s: string, from: number, to: number): Match | undefined {
  re.lastIndex = from;
  const m = re.exec(s);
  if (!m || m.index + m[0].length > to) return undefined;
  return { start: m.index, end: m.index + m[0].length };
}

/**
 * Checks `output` against the directives in `checkText`; throws a FileCheckError naming the
 * failing directive, its line, and the region of the output that was searched.
 */
export function checkOutput(output: string, checkText: string, opts: CheckOptions = {}): void {
  const ds = parseChecks(checkText, opts);
  if (ds.length === 0) throw new FileCheckError(`${opts.file ?? "check"}: error: no CHECK directives found`);
  const out = new Text(output);
  const file = opts.file ?? "check";
  const fail = (d: Directive, why: string, from: number, to: number, mark?: number): never => {
    const a = out.lineOf(from);
    const b = out.lineOf(Math.max(from, to - 1));
    throw new FileCheckError(
      `${file}:${d.line}: error: ${d.kind}: ${why}\n  ${d.kind}: ${d.text}\n` +
        `output searched (lines ${a + 1}-${b + 1}):\n${out.excerpt(a, b, mark)}`,
    );
  };

  // Labels are found first; they cut the output into regions the other checks stay within.
  const labels: Match[] = [];
  let pos = 0;
  for (const d of ds.filter((x) => x.kind === "CHECK-LABEL")) {
    const m = find(d.re, output, pos, output.length) ?? fail(d, "label not found", pos, output.length);
    labels.push(m);
    pos = m.end;
  }

  let nextLabel = 0;
  let regionEnd = labels[0]?.start ?? output.length;
  let cursor = 0;
  let lastLine: number | undefined;
  let nots: Directive[] = [];
  const checkNots = (to: number): void => {
    for (const d of nots) {
      const m = find(d.re, output, cursor, to);
      if (m) fail(d, "excluded string found", cursor, to, out.lineOf(m.start));
    }
    nots = [];
  };

  for (const d of ds) {
    switch (d.kind) {
      case "CHECK-NOT":
        nots.push(d);
        continue;
      case "CHECK-LABEL": {
        const m = labels[nextLabel++];
        checkNots(m.start);
        regionEnd = labels[nextLabel]?.start ?? output.length;
        cursor = m.end;
        lastLine = out.lineOf(m.start);
        continue;
      }
      case "CHECK": {
        const m =
          find(d.re, output, cursor, regionEnd) ?? fail(d, "expected string not found", cursor, regionEnd);
        checkNots(m.start);
        cursor = m.end;
        lastLine = out.lineOf(m.start);
        continue;
      }
      case "CHECK-NEXT":
      case "CHECK-SAME": {
        if (lastLine === undefined)
          throw new FileCheckError(`${file}:${d.line}: error: ${d.kind} needs a match before it`);
        const next = d.kind === "CHECK-NEXT";
        const line = next ? lastLine + 1 : lastLine;
        if (line >= out.starts.length) fail(d, "no line after the previous match", cursor, output.length);
        const from = next ? Math.max(cursor, out.starts[line]) : cursor;
        const to = Math.min(out.lineEnd(line), regionEnd);
        const why = next
          ? "expected string not found on the line after the previous match"
          : "expected string not found on the same line as the previous match";
        const m = find(d.re, output, from, to) ?? fail(d, why, Math.min(from, to), to);
        checkNots(m.start);
        cursor = m.end;
        lastLine = line;
        continue;
      }
    }
  }
  checkNots(regionEnd);
}
