/**
 * GpuProgram.timeDispatches (the per-dispatch profile of bench/profile.ts) on a real adapter:
 * one entry per step with a non-empty grid, named and ordered like the program's steps.
 * Skips with the reason when there is no adapter.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { GraphBuilder } from "../../compiler/builder.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import "../../compiler/ops/index.js";
import { compileProgram } from "../../runtime/artifact.js";
import { GpuRuntimeError } from "../../runtime/webgpu/device.js";
import { gpuRuntime } from "./webgpu-harness.js";

it("timeDispatches times each step of a run alone: one entry per step, names and grids match", async (t) => {
  const rt = await gpuRuntime();
  if (typeof rt === "string") return t.skip(rt);
  // softmax(x @ w): a matmul step and a softmax step (a reduction does not fuse into the matmul).
  const b = new GraphBuilder("two_steps");
  const x = b.input("x", "f32", [2, 4]);
  const w = b.constant(makeTensor("f32", [4, 3], [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]), "w");
  const g = b.output(b.op("Softmax", [b.op("MatMul", [x, w])], { axis: -1 }));
  const cp = compileProgram(buildProgram(g, rt.target), "wgsl", rt.target, renderWgsl);
  assert.equal(cp.steps.length, 2);
  const prog = await rt.load(cp);
  await assert.rejects(prog.timeDispatches(undefined), GpuRuntimeError, "no run to time yet");
  const inputs = new Map([["x", makeTensor("f32", [2, 4], [1, 2, 3, 4, 0, 0, 0, 0])]]);
  const timed = await prog.timeDispatches(inputs, { repeats: 2, emptySubmits: 3 });
  assert.deepEqual(
    timed.map((d) => [d.step, d.kernel, d.nodes]),
    cp.steps.map((s, i) => [i, cp.kernels[s.kernel].name, s.nodes]),
  );
  for (const d of timed) {
    assert.ok(Number.isFinite(d.ms) && d.ms >= 0, `${d.kernel}: ${d.ms} ms`);
    assert.ok(
      d.grid.every((n) => Number.isInteger(n) && n >= 1),
      `${d.kernel}: grid ${d.grid}`,
    );
  }
  // Timing leaves the program runnable, and without inputs it times the latest run's binding.
  const out = [...(await prog.run(inputs)).values()][0];
  const row0 = [5, 6, 7].map(Math.exp);
  const sum = row0.reduce((a, v) => a + v, 0);
  assert.ok(Math.abs(out.data[2] - row0[2] / sum) < 1e-5, `softmax ${out.data[2]}`);
  const again = await prog.timeDispatches(undefined, { repeats: 1, emptySubmits: 1 });
  assert.deepEqual(
    again.map((d) => d.kernel),
    timed.map((d) => d.kernel),
  );
  await assert.rejects(prog.timeDispatches(inputs, { repeats: 0 }), /repeats and emptySubmits >= 1/);
  prog.destroy();
});
