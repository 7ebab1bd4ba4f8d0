/// <reference types="@webgpu/types" />
/**
 * Per-dispatch GPU time of a loaded program (bench-only): every dispatch of the prepared run in its
 * own submit, awaited, minus an empty submit's round trip. Shared by bench/webgpu.ts and
 * bench/vit-b16-policies.ts.
 */
import type { Graph } from "../compiler/ir/graph.js";
import { evalDim, printDim } from "../compiler/ir/sym.js";
import { nodeName } from "../compiler/kir/schedule.js";
import { nodeFlops } from "../compiler/report/flops.js";
import type { GpuProgram } from "../runtime/webgpu/program.js";
import { median } from "./fmnist-eval.js";

/** The runtime has no profiling hook yet: this is the shape of GpuProgram's private prepared run. */
interface PreparedView {
  readonly dispatches: readonly {
    readonly kernel: { readonly pipeline: GPUComputePipeline };
    readonly group: GPUBindGroup;
    readonly grid: [number, number, number];
  }[];
}

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
  /** FLOPs of the nodes this dispatch is the first of (`OpDef.flops`, symbols bound by `env`). */
  readonly flops: number;
}

/**
 * Times every dispatch of `prog`'s prepared run (`run` must have run it once with the inputs to
 * profile). `env` binds the graph's symbols for the FLOPs counts.
 */
export async function profileDispatches(
  device: GPUDevice,
  g: Graph,
  prog: GpuProgram,
  env: ReadonlyMap<string, number>,
  reps = 3,
): Promise<DispatchTime[]> {
  const prep = (prog as unknown as { prepared?: PreparedView }).prepared;
  if (!prep) throw new Error("profile: GpuProgram has no prepared run (run it first)");
  const submitOne = async (d?: PreparedView["dispatches"][number]): Promise<number> => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    if (d) {
      pass.setPipeline(d.kernel.pipeline);
      pass.setBindGroup(0, d.group);
      pass.dispatchWorkgroups(...d.grid);
    }
    pass.end();
    const t = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t;
  };
  const empty: number[] = [];
  for (let i = 0; i < 20; i++) empty.push(await submitOne());
  const base = median(empty);
  const samples = prep.dispatches.map(() => [] as number[]);
  for (let r = 0; r < reps; r++)
    for (const [i, d] of prep.dispatches.entries()) samples[i].push(await submitOne(d));
  const counts = nodeFlops(g);
  const opOf = new Map(g.nodes.map((n) => [nodeName(n), n.op]));
  const dimsOf = new Map(
    g.nodes.map((n) => [nodeName(n), `[${n.outputs[0]?.type.dims.map(printDim).join(",")}]`]),
  );
  const flopsOf = new Map(
    g.nodes.map((n, i) => {
      const c = counts[i];
      let f = 0;
      try {
        f = c === undefined ? 0 : evalDim(c, env);
      } catch {
        f = 0; // a count over symbols env does not bind: left out of GFLOP/s
      }
      return [nodeName(n), f];
    }),
  );
  const counted = new Set<string>();
  return prep.dispatches.map((d, i) => {
    // The runtime labels bind groups `kernel NAME (step I: node, node...)`.
    const m = /^kernel (\S+) \(step (\d+): (.*)\)$/.exec(d.group.label) ?? ["", "?", "?", d.group.label];
    const nodes = m[3].split(", ");
    const ops = [...new Set(nodes.map((n) => opOf.get(n) ?? "?"))].join("+");
    let flops = 0;
    for (const n of nodes)
      if (!counted.has(n)) {
        counted.add(n);
        flops += flopsOf.get(n) ?? 0;
      }
    const ms = Math.max(0, median(samples[i]) - base);
    const dims = dimsOf.get(nodes[0]) ?? "?";
    return { kernel: m[1], step: m[2], nodes, ops, dims, grid: d.grid.join("x"), ms, flops };
  });
}

/** Prints the profile: time per op group (with GFLOP/s), then the top dispatches. */
export function printProfile(title: string, rows: readonly DispatchTime[], reps = 3, groups = 8): void {
  const total = rows.reduce((a, r) => a + r.ms, 0);
  const pct = (ms: number): string => `${((100 * ms) / total).toFixed(1)}%`;
  console.log(`\nprofile: ${title} (${rows.length} dispatches, each its own submit, median of ${reps};`);
  console.log(`  an empty submit's round trip is subtracted; sum ${total.toFixed(1)} ms)`);
  const byOps = new Map<string, { ms: number; n: number; flops: number }>();
  for (const r of rows) {
    const e = byOps.get(r.ops) ?? { ms: 0, n: 0, flops: 0 };
    byOps.set(r.ops, { ms: e.ms + r.ms, n: e.n + 1, flops: e.flops + r.flops });
  }
  console.log("| op group (fused ops) | dispatches | ms | share | GFLOP | GFLOP/s |");
  console.log("|---|---|---|---|---|---|");
  for (const [ops, e] of [...byOps].sort((a, b) => b[1].ms - a[1].ms).slice(0, groups))
    console.log(
      `| ${ops} | ${e.n} | ${e.ms.toFixed(2)} | ${pct(e.ms)} | ${(e.flops / 1e9).toFixed(3)} | ` +
        `${e.ms > 0 ? (e.flops / 1e6 / e.ms).toFixed(2) : "-"} |`,
    );
  console.log("| top dispatches: step | kernel | first node (ops) output dims | grid | ms | share |");
  console.log("|---|---|---|---|---|---|");
  for (const r of [...rows].sort((a, b) => b.ms - a.ms).slice(0, 5))
    console.log(
      `| ${r.step} | ${r.kernel} | ${r.nodes[0]} (${r.ops}) ${r.dims} | ${r.grid} | ` +
        `${r.ms.toFixed(2)} | ${pct(r.ms)} |`,
    );
}
