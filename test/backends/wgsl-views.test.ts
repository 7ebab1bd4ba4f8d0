/**
 * Strided views on WebGPU (Dawn + lavapipe in CI): the exporter's head split around attention runs
 * with q/k/v read through strides and the output stored through its Reshape/Transpose chain, in
 * f32 and f16 storage, and matches the CPU reference. Skips (with the reason) only without an adapter.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { toF16 } from "../../backends/wgsl/f16.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { compileProgram } from "../../runtime/artifact.js";
import type { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { headSplitFeeds, headSplitGraph } from "../kir/views-fixtures.js";
import { gpuRuntime } from "../runtime/webgpu-harness.js";
import { assertClose } from "../util/helpers.js";

let rt: WebGpuRuntime | string = "not started";

async function check(r: WebGpuRuntime, g: Graph, tol: number): Promise<void> {
  const p = buildProgram(g, r.target);
  const folded = new Set(
    g.nodes.filter((n) => n.op === "Transpose" || n.op === "Slice").map((n) => n.outputs[0].name),
  );
  assert.equal(p.steps.filter((s) => s.nodes.some((n) => folded.has(n))).length, 0, "no copy kernels");
  const program = await r.load(compileProgram(p, "wgsl", r.target, renderWgsl));
  try {
    for (const batch of [1, 3]) {
      const feeds = headSplitFeeds(batch);
      const want = runGraph(g, feeds);
      const got = await program.run(feeds);
      for (const [name, w] of want) assertClose(got.get(name)!, w, tol, `${name} at batch ${batch}`);
    }
  } finally {
    program.destroy();
  }
}

describe("strided views on WebGPU", () => {
  before(async () => {
    rt = await gpuRuntime({ f16: true });
  });

  it("head split + attention + out projection: f32 matches the CPU reference", async (t) => {
    if (typeof rt === "string") return t.skip(rt);
    await check(rt, headSplitGraph(), 1e-5);
  });

  it("the same in f16 storage (strided f16 loads and stores) within f16 rounding", async (t) => {
    if (typeof rt === "string") return t.skip(rt);
    if (!rt.target.f16) return t.skip(`the adapter (${rt.ctx.description}) lacks shader-f16`);
    // f16 inputs of magnitude <= 1.5 through ~4 roundings each: 1e-2 absolute.
    const g = toF16(headSplitGraph());
    await check(rt, g, 1e-2);
  });
});
