/**
 * Every backend op case (test/backends/cases) on a real WebGPU adapter (Dawn + lavapipe in CI):
 * each case becomes a one-node graph, is scheduled with `buildProgram` for the device's target,
 * rendered to WGSL, run, and compared with the op's reference, under both `Target.matmul`
 * styles. One device for the whole file; all programs are compiled up front (pipelines in
 * parallel), then run one by one. The case
 * tolerances are the KIR interpreter's: on lavapipe every case meets them (exp/log/tanh within
 * 1e-5 relative, erf by our helper within 4e-7), so there are no WGSL-specific loosenings.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { computeKnown, inferNode } from "../../compiler/infer.js";
import { Graph, type Value } from "../../compiler/ir/graph.js";
import { freeSymbols } from "../../compiler/ir/sym.js";
import type { Tensor } from "../../compiler/ir/tensor.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { compileProgram } from "../../runtime/artifact.js";
import type { GpuProgram } from "../../runtime/webgpu/program.js";
import type { WebGpuRuntime } from "../../runtime/webgpu/runtime.js";
import { gpuRuntime } from "../runtime/webgpu-harness.js";
import { ALL_CASES } from "./cases/index.js";
import { compare, type Prepared, prepare } from "./cases/run.js";
import type { OpCase } from "./cases/types.js";

/** A one-node graph for a case: inputs x<i> (constants where the case says), outputs y<i>. */
function caseGraph(c: OpCase, p: Prepared): Graph {
  const g = new Graph(`case_${c.name.replace(/[^A-Za-z0-9_]/g, "_")}`);
  const vals: (Value | null)[] = p.inTypes.map((t, i) => {
    if (!t) return null;
    for (const s of t.dims.flatMap((d) => [...freeSymbols(d)]))
      if (!g.symbols.has(s)) g.declareSymbol({ name: s });
    const data = c.inputs[i];
    return c.consts?.includes(i) && data ? g.addConstant(t, `x${i}`, data) : g.addInput(t, `x${i}`);
  });
  const n = c.numOutputs ?? 1;
  const def = p.def;
  // Re-infer on this graph so data-dependent dims mint this graph's symbols (with capacities).
  const types = inferNode(g, def, { op: c.op, attrs: c.attrs ?? {}, inputs: vals }, n, {
    known: computeKnown(g),
    dataDims: "mint",
  });
  const node = g.addNode(c.op, vals, types, c.attrs ?? {}, {
    names: types.map((_, i) => `y${i}`),
  });
  g.outputs.push(...node.outputs);
  return g;
}

/**
 * The leading box of `t` with `shape` (a data-dependent symbol runs at its capacity on the device,
 * so those outputs are padded past the real count; the reference has the real count).
 */
function leadingBox(t: Tensor, shape: readonly number[]): Tensor {
  if (t.shape.join() === shape.join() || t.shape.length !== shape.length) return t;
  const n = shape.reduce((a, b) => a * b, 1);
  const out: number[] = new Array<number>(n);
  const idx = new Array<number>(shape.length).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    for (let a = 0; a < shape.length; a++) src = src * t.shape[a] + idx[a];
    out[o] = t.data[src];
    for (let a = shape.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
  return makeTensor(t.dtype, shape, out);
}

interface Compiled {
  readonly p: Prepared;
  readonly program?: GpuProgram;
  readonly error?: string;
}

/**
 * Both matmul styles: the compile-time autotune may pick either, and the style also selects the
 * barrier-free or workgroup forms of attention and reductions (`barrierAverse`).
 */
const STYLES = ["register", "tiled"] as const;

let rt: WebGpuRuntime | string = "not started";
const compiled = new Map<string, Compiled>();

describe("wgsl ops: every backend op case on WebGPU", () => {
  before(async () => {
    rt = await gpuRuntime({ f16: true });
    if (typeof rt === "string") {
      console.log(`# skipping WGSL op cases: ${rt}`);
      return;
    }
    const r = rt;
    const t0 = performance.now();
    const jobs = ALL_CASES.flatMap((c) => {
      const p = prepare(c);
      return STYLES.map(async (style) => {
        const target = { ...r.target, matmul: style };
        try {
          const cp = compileProgram(buildProgram(caseGraph(c, p), target), "wgsl", target, renderWgsl);
          compiled.set(`${style}/${c.name}`, { p, program: await r.load(cp) });
        } catch (e) {
          compiled.set(`${style}/${c.name}`, { p, error: (e as Error).message });
        }
      });
    });
    await Promise.all(jobs);
    console.log(
      `# ${ALL_CASES.length} cases x ${STYLES.length} styles compiled in ${((performance.now() - t0) / 1000).toFixed(1)} s on ${r.ctx.description}`,
    );
  });

  for (const style of STYLES)
    describe(`matmul style ${style}`, () => {
      for (const c of ALL_CASES)
        it(c.name, async (t) => {
          if (typeof rt === "string") return t.skip(rt);
          const { p, program, error } = compiled.get(`${style}/${c.name}`)!;
          assert.ok(program, error);
          const feeds = new Map<string, Tensor>();
          c.inputs.forEach((x, i) => {
            if (x && !c.consts?.includes(i)) feeds.set(`x${i}`, x);
          });
          const out = await program.run(feeds);
          const got = p.want.map((w, i) => leadingBox(out.get(`y${i}`)!, w.shape));
          assert.deepEqual(compare(c, got, p.want), []);
          program.destroy();
        });
    });
});

it("wgsl ops: the case table is not empty and names are unique", () => {
  assert.ok(ALL_CASES.length > 100);
  assert.equal(new Set(ALL_CASES.map((c) => c.name)).size, ALL_CASES.length);
});
