import type { Graph } from "../compiler/ir/graph.js";
import { printGraph } from "../compiler/ir/text/printer.js";
import { type Diagnostic, formatDiagnostic, verifyGraph } from "../compiler/verify.js";
import "./index.js";
import { allPasses, allPipelines, getPass, getPipeline } from "./registry.js";

/** What every pass may read or leave behind besides the graph. */
export interface PassContext {
  /** Largest tensor (in elements) fold-constants may materialise; keeps weights from being copied. */
  readonly foldMaxElements: number;
  /** One-line notes passes leave for debugging output (what was folded, removed, rewritten). */
  readonly remarks: string[];
}

/** A graph transformation. `run` edits `g` in place and reports whether it changed anything. */
export interface Pass {
  readonly name: string;
  readonly description: string;
  run(g: Graph, ctx: PassContext): boolean;
}

/** A pass failed or left invalid IR; `dump` is the IR right after the pass. */
export class PassError extends Error {
  constructor(
    readonly pass: string,
    message: string,
    readonly diagnostics: readonly Diagnostic[] = [],
    readonly dump = "",
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A pipeline string names an unknown pass or is malformed. */
export class PipelineError extends Error {}

/** Wall time of one pass run. */
export interface PassTiming {
  readonly pass: string;
  readonly ms: number;
  readonly changed: boolean;
}

export const DEFAULT_FOLD_MAX_ELEMENTS = 1 << 20;

/**
 * Parses `"dce,fold-constants"` into passes; registered pipeline names expand in place.
 * The empty string is the empty pipeline.
 */
export function parsePipeline(text: string): Pass[] {
  if (text.trim() === "") return [];
  const out: Pass[] = [];
  const expand = (name: string, seen: readonly string[]): void => {
    const pass = getPass(name);
    if (pass) return void out.push(pass);
    const sub = getPipeline(name);
    if (!sub) throw new PipelineError(unknownMessage(name));
    if (seen.includes(name)) throw new PipelineError(`pipeline '${name}' includes itself`);
    for (const s of sub) expand(s, [...seen, name]);
  };
  for (const raw of text.split(",")) {
    const name = raw.trim();
    if (name === "") throw new PipelineError(`empty pass name in pipeline '${text}'`);
    expand(name, []);
  }
  return out;
}

function unknownMessage(name: string): string {
  const passes = allPasses()
    .map((p) => p.name)
    .join(", ");
  const pipelines = allPipelines()
    .map((p) => p.name)
    .join(", ");
  return `unknown pass '${name}'; known passes: ${passes}; pipelines: ${pipelines}`;
}

/** One line per pass and pipeline (`name  description`), for CLI help. */
export function describePasses(): string {
  const rows = [
    ...allPasses().map((p) => [p.name, p.description]),
    ...allPipelines().map((p) => [p.name, `${p.description} (${p.passes.join(",")})`]),
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([n, d]) => `${n.padEnd(w)}  ${d}`).join("\n");
}

export interface PassManagerOptions {
  /** Verify the graph after every pass (default true). The input is not verified: its producer does that. */
  readonly verify?: boolean;
  readonly foldMaxElements?: number;
}

/** Runs a pipeline over a graph, verifying after every pass and timing each one. */
export class PassManager {
  readonly passes: readonly Pass[];
  /** Timings of the last `run`, one entry per pass in order. */
  timings: PassTiming[] = [];
  /** Remarks the passes left during the last `run`. */
  remarks: string[] = [];
  private readonly verify: boolean;
  private readonly foldMaxElements: number;

  /** `pipeline` is a pipeline string (`"shape-infer,dce"`, `"default"`) or a list of passes. */
  constructor(pipeline: string | readonly Pass[], opts: PassManagerOptions = {}) {
    this.passes = typeof pipeline === "string" ? parsePipeline(pipeline) : [...pipeline];
    this.verify = opts.verify ?? true;
    this.foldMaxElements = opts.foldMaxElements ?? DEFAULT_FOLD_MAX_ELEMENTS;
  }

  /** Runs every pass in order; returns whether any pass changed the graph. */
  run(g: Graph): boolean {
    this.timings = [];
    this.remarks = [];
    const ctx: PassContext = { foldMaxElements: this.foldMaxElements, remarks: this.remarks };
    let changed = false;
    for (const pass of this.passes) {
      const t0 = performance.now();
      let c: boolean;
      try {
        c = pass.run(g, ctx);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        throw new PassError(pass.name, `pass '${pass.name}' failed: ${msg}`, [], safeDump(g), { cause: e });
      }
      this.timings.push({ pass: pass.name, ms: performance.now() - t0, changed: c });
      changed ||= c;
      if (this.verify) checkAfter(pass.name, g);
    }
    return changed;
  }

  /** A table of the last run's timings, slowest passes easy to spot, with a total. */
  formatTimings(): string {
    return formatTimings(this.timings);
  }
}

function checkAfter(pass: string, g: Graph): void {
  const diags = verifyGraph(g);
  if (diags.length === 0) return;
  const dump = safeDump(g);
  const msg =
    `verification failed after pass '${pass}':\n` +
    diags.map(formatDiagnostic).join("\n") +
    `\n// IR after pass '${pass}':\n${dump}`;
  throw new PassError(pass, msg, diags, dump);
}

// A broken graph may break the printer too; the diagnostics still matter most then.
function safeDump(g: Graph): string {
  try {
    return printGraph(g);
  } catch (e) {
    return `<printer failed: ${e instanceof Error ? e.message : String(e)}>`;
  }
}

/** `  0.42 ms  changed  dce` lines plus a total line. */
export function formatTimings(timings: readonly PassTiming[]): string {
  const width = Math.max(5, ...timings.map((t) => t.pass.length));
  const lines = timings.map(
    (t) =>
      `${t.ms.toFixed(3).padStart(10)} ms  ${t.pass.padEnd(width)}  ${t.changed ? "changed" : "unchanged"}`,
  );
  const total = timings.reduce((s, t) => s + t.ms, 0);
  lines.push(`${total.toFixed(3).padStart(10)} ms  total`);
  return lines.join("\n");
}
