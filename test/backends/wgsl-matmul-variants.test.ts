/**
 * Every matmul kernel variant (`MATMUL_VARIANTS`, any of which the autotuner may pick) on every
 * MatMul/Gemm backend case on a real WebGPU adapter, against the op's reference (the main table,
 * wgsl-ops.test.ts, runs each style's default variant only).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { Graph } from "../../compiler/ir/graph.js";
import { freeSymbols } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import type { Target } from "../../compiler/kir/types.js";
import { MATMUL_VARIANTS } from "../../compiler/ops/linalg-lower.js";
import { compileProgram } from "../../runtime/artifact.js";
import { gpuRuntime } from "../runtime/webgpu-harness.js";
import { ALL_CASES } from "./cases/index.js";
import { compare, type Prepared, prepare } from "./cases/run.js";
import type { OpCase } from "./cases/types.js";

const MATMUL_CASES = ALL_CASES.filter((c) => c.op === "MatMul" || c.op === "Gemm");

/** A one-node graph for a case: inputs x<i> (constants where the case says), output y0. */
function caseGraph(c: OpCase, p: Prepared): Graph {
  const g = new Graph("case");
  const ins = p.inTypes.map((t, i) => {
    if (!t) return null;
    for (const s of t.dims.flatMap((d) => [...freeSymbols(d)]))
      if (!g.symbols.has(s)) g.declareSymbol({ name: s });
    const data = c.inputs[i];
    return c.consts?.includes(i) && data ? g.addConstant(t, `x${i}`, data) : g.addInput(t, `x${i}`);
  });
  const n = g.addNode(c.op, ins, p.outTypes, c.attrs ?? {}, { names: ["y0"] });
  g.outputs.push(n.outputs[0]);
  return g;
}

describe("wgsl matmul variants: every MatMul/Gemm case on WebGPU", () => {
  for (const v of MATMUL_VARIANTS)
    it(`variant ${v.name}`, async (t) => {
      const rt = await gpuRuntime();
      if (typeof rt === "string") return t.skip(rt);
      const target: Target = { ...rt.target, matmul: v.style, matmulVariant: v.name };
      for (const c of MATMUL_CASES) {
        const p = prepare(c);
        const cp = compileProgram(buildProgram(caseGraph(c, p), target), "wgsl", target, renderWgsl);
        assert.ok(
          cp.kernels.some((k) => k.name.endsWith(`_${v.name}`)),
          `${c.name}: a ${v.name} kernel`,
        );
        const program = await rt.load(cp);
        try {
          const feeds = new Map<string, Tensor>();
          c.inputs.forEach((x, i) => {
            if (x && !c.consts?.includes(i)) feeds.set(`x${i}`, x);
          });
          const out = await program.run(feeds);
          assert.deepEqual(compare(c, [out.get("y0")!], p.want), [], c.name);
        } finally {
          program.destroy();
        }
      }
    });
});
