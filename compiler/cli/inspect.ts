import { writeFileSync } from "node:fs";
import type { Graph } from "../ir/graph.js";
import { add, type Dim, printDim, substitute } from "../ir/sym.js";
import { printType } from "../ir/types.js";
import { nodeFlops } from "../report/flops.js";
import {
  compareLayers,
  type GraphReport,
  graphReport,
  type LayerComparison,
  tokensText,
} from "../report/layers.js";
import { type Args, type CliIO, CliError, type CommandSpec, fsMessage, UsageError } from "./cli.js";
import { findBlocks } from "../../passes/discover-blocks.js";
import { PassManager } from "../../passes/manager.js";
import { renderHtmlReport } from "./html-report.js";
import { inputKind, loadGraph } from "./load.js";
import { applyPolicyOption, parseBindings, prepareForPolicies } from "./policy.js";

/** One node of the report; `flops` is undefined when the op declares no count. */
export interface NodeReport {
  readonly index: number;
  readonly op: string;
  readonly outputs: readonly { readonly name: string; readonly type: string }[];
  readonly flops?: Dim;
  /** The IR policy attached at this node, if any. */
  readonly policy?: string;
}

/** Per-node op, output types and FLOPs (symbols left symbolic), in graph order. */
export function nodeReports(g: Graph): NodeReport[] {
  const all = nodeFlops(g);
  return g.nodes.map((n, index) => {
    const flops = all[index];
    return {
      index,
      op: n.op,
      ...(n.policy !== undefined ? { policy: n.policy } : {}),
      outputs: n.outputs.map((o) => ({ name: o.name, type: printType(o.type) })),
      ...(flops !== undefined ? { flops } : {}),
    };
  });
}

/** One transformer block: its scope, token count (key count of its attention) and FLOPs of its nodes. */
export interface BlockReport {
  readonly scope: string;
  readonly tokens: Dim;
  readonly flops: Dim;
  readonly attnFlops: Dim;
  readonly mlpFlops: Dim;
}

/**
 * Blocks found by `discover-blocks` (run `onnx-structure` first for exported models), with the
 * FLOPs of the nodes scoped `blocks.K`, `blocks.K.attn`, `blocks.K.mlp`.
 */
export function blockReports(g: Graph, nodes: readonly NodeReport[] = nodeReports(g)): BlockReport[] {
  const sum = (pred: (scope: string) => boolean): Dim =>
    add(
      0,
      ...g.nodes.flatMap((n, i) =>
        n.scope && pred(n.scope) && nodes[i].flops !== undefined ? [nodes[i].flops!] : [],
      ),
    );
  return findBlocks(g).map((b) => {
    const k = `blocks.${b.index}`;
    return {
      scope: k,
      tokens: b.tokens,
      flops: sum((s) => s === k || s.startsWith(`${k}.`)),
      attnFlops: sum((s) => s === `${k}.attn`),
      mlpFlops: sum((s) => s === `${k}.mlp`),
    };
  });
}

/** `tokr inspect`: a per-node report of a model. */
export const inspectCommand: CommandSpec = {
  name: "inspect",
  summary: "Print each node's op, output types and FLOPs (symbolic where shapes are), with the total.",
  synopsis: "INPUT [--policy FILE] [--bind SYM=N,...] [--html FILE] [--blocks] [--json]",
  options: {
    policy: {
      type: "string",
      arg: "FILE",
      help: "a .tokr policy file to apply: report tokens, FLOPs and peak activation memory per layer, before and after",
    },
    bind: { type: "string", arg: "SYM=N,...", help: "symbol values for the report (e.g. batch=1,N=197)" },
    html: {
      type: "string",
      arg: "FILE",
      help: "also write the layer report as a self-contained HTML page with plots",
    },
    json: { type: "boolean", help: "print the report as JSON" },
    blocks: {
      type: "boolean",
      help: "run the onnx-structure passes first and list transformer blocks with token count and FLOPs",
    },
  },
  positionals: { min: 1, max: 1, names: "INPUT" },
  run(args, io) {
    const input = args.positionals[0];
    const g = loadGraph(args, input);
    if (
      args.string("policy") !== undefined ||
      args.string("html") !== undefined ||
      args.string("bind") !== undefined
    )
      return layerReport(args, io, g, input);
    const withBlocks = args.flag("blocks");
    if (withBlocks) new PassManager("onnx-structure").run(g);
    const nodes = nodeReports(g);
    const blocks = withBlocks ? blockReports(g, nodes) : [];
    const counted = nodes.filter((n) => n.flops !== undefined);
    const total = add(0, ...counted.map((n) => n.flops!));
    const uncounted = [...new Set(nodes.filter((n) => n.flops === undefined).map((n) => n.op))];
    const sig = (vs: Graph["inputs"]) => vs.map((v) => ({ name: v.name, type: printType(v.type) }));
    if (args.flag("json")) {
      const report = {
        graph: g.name,
        inputs: sig(g.inputs),
        outputs: sig(g.outputs),
        nodes: nodes.map((n) => ({ ...n, flops: n.flops === undefined ? null : jsonDim(n.flops) })),
        totalFlops: jsonDim(total),
        opsWithoutFlops: uncounted,
        ...(withBlocks
          ? {
              blocks: blocks.map((b) => ({
                scope: b.scope,
                tokens: jsonDim(b.tokens),
                flops: jsonDim(b.flops),
                attnFlops: jsonDim(b.attnFlops),
                mlpFlops: jsonDim(b.mlpFlops),
              })),
            }
          : {}),
        ...(g.policies.size
          ? { policies: Object.fromEntries([...g.policies].map(([k, p]) => [k, p.params])) }
          : {}),
      };
      io.stdout(JSON.stringify(report, null, 2) + "\n");
      return;
    }
    const rows = nodes.map((n) => [
      String(n.index),
      n.policy !== undefined ? `${n.op} policy @${n.policy}` : n.op,
      n.outputs.map((o) => `%${o.name}: ${o.type}`).join(", "),
      n.flops === undefined ? "-" : printDim(n.flops),
    ]);
    const head = ["#", "op", "outputs", "flops"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r: readonly string[]) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
        .join("  ")
        .trimEnd();
    io.stdout(`graph @${g.name}: ${nodes.length} nodes\n`);
    io.stdout([head, ...rows].map(line).join("\n") + "\n");
    const note = uncounted.length ? ` (not counted: ${uncounted.join(", ")})` : "";
    io.stdout(`total flops: ${printDim(total)}${note}\n`);
    if (withBlocks) {
      io.stdout(`blocks: ${blocks.length}\n`);
      for (const b of blocks)
        io.stdout(
          `  ${b.scope}  tokens ${printDim(b.tokens)}  flops ${printDim(b.flops)} (attn ${printDim(b.attnFlops)}, mlp ${printDim(b.mlpFlops)})\n`,
        );
    }
  },
};

/** Concrete counts as JSON numbers, symbolic ones as their printed form. */
function jsonDim(d: Dim): number | string {
  return typeof d === "number" ? d : printDim(d);
}

/**
 * `inspect --policy/--html/--bind`: per-layer tokens and FLOPs, totals and peak activation memory,
 * before and after applying the policy (the model alone without one).
 */
function layerReport(args: Args, io: CliIO, g: Graph, input: string): void {
  if (args.flag("blocks"))
    throw new UsageError(
      "--blocks lists the unreduced blocks; the layer report (--policy/--html/--bind) replaces it",
      args.command,
    );
  const binds = parseBindings(args);
  const kind = inputKind(args, input);
  prepareForPolicies(g, kind);
  const before = graphReport(g, binds);
  const applied = applyPolicyOption(args, io, g, undefined);
  const after = applied ? graphReport(g, binds) : undefined;
  const layers = compareLayers(before, after ?? before);
  const unbound = [...new Set([...before.unbound, ...(after?.unbound ?? [])])].sort();
  // Ratios and plots need numbers: unbound symbols count as 1 there (and the report says so).
  const ones = new Map<string, Dim>(unbound.map((s) => [s, 1]));
  const value = (d: Dim): number => {
    const v = typeof d === "number" ? d : substitute(d, ones);
    return typeof v === "number" ? v : NaN;
  };
  const notes = unbound.length
    ? [
        `unbound symbols (${unbound.join(", ")}) count as 1 in ratios and plots; bind them with --bind ${unbound[0]}=N`,
      ]
    : [];
  const ratio = after ? value(after.totalFlops) / value(before.totalFlops) : undefined;
  const html = args.string("html");
  if (html !== undefined) {
    const page = renderHtmlReport({
      title: `tokr report: ${input}${args.string("policy") ? ` with ${args.string("policy")!}` : ""}`,
      layers,
      before,
      ...(after ? { after } : {}),
      value,
      notes,
    });
    try {
      writeFileSync(args.path(html), page);
    } catch (e) {
      throw new CliError(`${html}: cannot write file: ${fsMessage(e)}`);
    }
  }
  if (args.flag("json")) {
    const side = (r: GraphReport | undefined) =>
      r && {
        totalFlops: jsonDim(r.totalFlops),
        peakActivationBytes: r.peakActivationBytes,
        opsWithoutFlops: r.uncounted,
      };
    const row = (l: LayerComparison) => ({
      layer: l.layer,
      tokensBefore: l.before?.tokens == null ? null : jsonDim(l.before.tokens),
      flopsBefore: l.before ? jsonDim(l.before.flops) : null,
      ...(after
        ? {
            tokensAfter: l.after?.tokens == null ? null : jsonDim(l.after.tokens),
            ...(l.after?.atMost ? { tokensAfterAtMost: true } : {}),
            flopsAfter: l.after ? jsonDim(l.after.flops) : null,
          }
        : {}),
    });
    const report = {
      graph: g.name,
      bindings: Object.fromEntries(binds),
      unbound,
      layers: layers.map(row),
      before: side(before),
      ...(after ? { after: side(after), flopsRatio: ratio } : {}),
      ...(g.policies.size
        ? { policies: Object.fromEntries([...g.policies].map(([k, p]) => [k, p.params])) }
        : {}),
    };
    io.stdout(JSON.stringify(report, null, 2) + "\n");
    return;
  }
  const cell = (d: Dim | null | undefined): string => (d === null || d === undefined ? "-" : printDim(d));
  const head = after
    ? ["layer", "tokens before", "tokens after", "flops before", "flops after"]
    : ["layer", "tokens", "flops"];
  const rows = layers.map((l) =>
    after
      ? [l.layer, tokensText(l.before), tokensText(l.after), cell(l.before?.flops), cell(l.after?.flops)]
      : [l.layer, tokensText(l.before), cell(l.before?.flops)],
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  io.stdout(`graph @${g.name}: ${layers.length} layers\n`);
  io.stdout([head, ...rows].map(line).join("\n") + "\n");
  const pct =
    ratio === undefined
      ? ""
      : ` (ratio ${ratio.toFixed(3)}, ${ratio <= 1 ? "-" : "+"}${Math.abs(100 - 100 * ratio).toFixed(1)}%)`;
  io.stdout(
    `total flops: ${printDim(before.totalFlops)}${after ? ` -> ${printDim(after.totalFlops)}` : ""}${pct}\n`,
  );
  const mem = (r: GraphReport): string => (r.peakActivationBytes === null ? "?" : `${r.peakActivationBytes}`);
  const memLine = after ? `${mem(before)} -> ${mem(after)}` : mem(before);
  const needs =
    before.peakActivationBytes === null ? ` (bind ${unbound.join(", ")} with --bind to compute)` : "";
  io.stdout(`peak activation memory (bytes): ${memLine}${needs}\n`);
  if (layers.some((l) => l.after?.atMost))
    io.stdout(
      "note: '<= N' is an adaptive prune's capacity: the per-example token count is at most N; FLOPs count it at N\n",
    );
  for (const n of notes) io.stdout(`note: ${n}\n`);
  if (before.uncounted.length) io.stdout(`not counted: ${before.uncounted.join(", ")}\n`);
}
