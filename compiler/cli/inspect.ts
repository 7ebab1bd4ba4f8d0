import { computeKnown, type InferMode, makeInferCtx, symbolicValue } from "../infer.js";
import type { Graph } from "../ir/graph.js";
import { add, type Dim, printDim } from "../ir/sym.js";
import { printType } from "../ir/types.js";
import { getOp, OpError } from "../ops/registry.js";
import type { CommandSpec } from "./cli.js";
import { findBlocks } from "../../passes/discover-blocks.js";
import { PassManager } from "../../passes/manager.js";
import { loadGraph } from "./load.js";
import { attachPolicyOption } from "./policy.js";

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
  const known = computeKnown(g);
  const mode: InferMode = { known, dataDims: "declared" };
  return g.nodes.map((n, index) => {
    const def = getOp(n.op);
    let flops: Dim | undefined;
    if (def?.flops) {
      try {
        flops = def.flops(
          makeInferCtx(g, def, n, n.outputs.length, mode),
          n.outputs.map((o) => o.type),
        );
      } catch (e) {
        if (!(e instanceof OpError)) throw e;
      }
    }
    const sv = def ? symbolicValue(g, def, n, mode) : undefined;
    if (sv) known.set(n.outputs[0], sv);
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
  synopsis: "INPUT [--policy FILE] [--blocks] [--json]",
  options: {
    policy: { type: "string", arg: "FILE", help: "a .tokr policy file to check and attach (shown per node)" },
    json: { type: "boolean", help: "print the report as JSON" },
    blocks: {
      type: "boolean",
      help: "run the onnx-structure passes first and list transformer blocks with token count and FLOPs",
    },
  },
  positionals: { min: 1, max: 1, names: "INPUT" },
  run(args, io) {
    const g = loadGraph(args, args.positionals[0]);
    attachPolicyOption(args, io, g);
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
