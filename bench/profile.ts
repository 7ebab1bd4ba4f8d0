/**
 * Per-dispatch GPU time of a loaded program (bench-only), from `GpuProgram.timeDispatches`: every
 * dispatch in its own submit, awaited, minus an empty submit's round trip; grouped by op with
 * FLOPs. Shared by bench/webgpu.ts and bench/vit-b16-policies.ts.
 */
import type { Graph } from "../compiler/ir/graph.js";
import { evalDim, printDim } from "../compiler/ir/sym.js";
import type { Tensor } from "../compiler/ir/tensor.js";
import { nodeName } from "../compiler/kir/schedule.js";
import { nodeFlops } from "../compiler/report/flops.js";
import type { GpuProgram } from "../runtime/webgpu/program.js";

/** One timed dispatch. */
export interface DispatchTime {
  readonly kernel: string;
  readonly step: string;
  readonly nodes: readonly string[];
  /** The distinct ops of the dispatch's nodes, `+`-joined (fused groups). */
  readonly ops: string;
  /** Output dims of the first node, printed. */
  readonly dims: string;
  readonly grid: string;
  readonly ms: number;
  /**
   * FLOPs of the nodes this dispatch is the first of (`OpDef.flops`, symbols bound by `env`);
   * undefined when a count reads a symbol `env` does not bind.
   */
  readonly flops: number | undefined;
}

/**
 * Times every dispatch of `prog` (`GpuProgram.timeDispatches`: with `inputs`, a run prepared for
 * them; without, the latest run). `env` binds the graph's symbols for the FLOPs counts.
 */
export async function profileDispatches(
  g: Graph,
  prog: GpuProgram,
  env: ReadonlyMap<string, number>,
  reps = 3,
  inputs?: ReadonlyMap<string, Tensor>,
): Promise<DispatchTime[]> {
  const timed = await prog.timeDispatches(inputs, { repeats: reps });
  const counts = nodeFlops(g);
  const opOf = new Map(g.nodes.map((n) => [nodeName(n), n.op]));
  const dimsOf = new Map(
    g.nodes.map((n) => [nodeName(n), `[${n.outputs[0]?.type.dims.map(printDim).join(",")}]`]),
  );
  const flopsOf = new Map(
    g.nodes.map((n, i): [string, number | undefined] => {
      const c = counts[i];
      if (c === undefined) return [nodeName(n), 0]; // an op without a count (data movement)
      try {
        return [nodeName(n), evalDim(c, env)];
      } catch {
        return [nodeName(n), undefined]; // a symbol env does not bind: printed as n/a
      }
    }),
  );
  const counted = new Set<string>();
  return timed.map((d) => {
    const ops = [...new Set(d.nodes.map((n) => opOf.get(n) ?? "?"))].join("+");
    let flops: number | undefined = 0;
    for (const n of d.nodes)
      if (!counted.has(n)) {
        counted.add(n);
        const f = flopsOf.get(n) ?? 0;
        flops = flops === undefined || f === undefined ? undefined : flops + f;
      }
    const dims = dimsOf.get(d.nodes[0]) ?? "?";
    return {
      kernel: d.kernel,
      step: String(d.step),
      nodes: d.nodes,
      ops,
      dims,
      grid: d.grid.join("x"),
      ms: d.ms,
      flops,
    };
  });
}

/** Prints the profile: time per op group (with GFLOP/s), then the top dispatches. */
export function printProfile(title: string, rows: readonly DispatchTime[], reps = 3, groups = 8): void {
  const total = rows.reduce((a, r) => a + r.ms, 0);
  const pct = (ms: number): string => `${((100 * ms) / total).toFixed(1)}%`;
  console.log(`\nprofile: ${title} (${rows.length} dispatches, each its own submit, median of ${reps};`);
  console.log(`  an empty submit's round trip is subtracted; sum ${total.toFixed(1)} ms)`);
  const byOps = new Map<string, { ms: number; n: number; flops: number | undefined }>();
  for (const r of rows) {
    const e = byOps.get(r.ops) ?? { ms: 0, n: 0, flops: 0 };
    const flops = e.flops === undefined || r.flops === undefined ? undefined : e.flops + r.flops;
    byOps.set(r.ops, { ms: e.ms + r.ms, n: e.n + 1, flops });
  }
  console.log("| op group (fused ops) | dispatches | ms | share | GFLOP | GFLOP/s |");
  console.log("|---|---|---|---|---|---|");
  for (const [ops, e] of [...byOps].sort((a, b) => b[1].ms - a[1].ms).slice(0, groups))
    console.log(
      `| ${ops} | ${e.n} | ${e.ms.toFixed(2)} | ${pct(e.ms)} | ` +
        (e.flops === undefined
          ? "n/a | n/a |"
          : `${(e.flops / 1e9).toFixed(3)} | ${e.ms > 0 ? (e.flops / 1e6 / e.ms).toFixed(2) : "-"} |`),
    );
  console.log("| top dispatches: step | kernel | first node (ops) output dims | grid | ms | share |");
  console.log("|---|---|---|---|---|---|");
  for (const r of [...rows].sort((a, b) => b.ms - a.ms).slice(0, 5))
    console.log(
      `| ${r.step} | ${r.kernel} | ${r.nodes[0]} (${r.ops}) ${r.dims} | ${r.grid} | ` +
        `${r.ms.toFixed(2)} | ${pct(r.ms)} |`,
    );
}
