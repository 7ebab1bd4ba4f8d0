/**
 * Compile-time batch separability (compiler/kir/batch.ts): which programs the runtime may run as
 * consecutive batch slices. Nodes that mix examples along B are refused with the node named.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildProgram } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { compileTokr } from "../../compiler/lang/check.js";
import { fmnistVit } from "../passes/reduce-fixtures.js";
import type { Program } from "../../compiler/kir/program.js";
import { runGraph } from "../../backends/cpu/interpreter.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { allocData, numel, type Tensor } from "../../compiler/ir/tensor.js";
import { seeded } from "./split-cases.js";
import { assertClose } from "../util/helpers.js";
import { renderWgsl } from "../../backends/wgsl/render.js";
import { compileProgram, loadProgramArtifact, writeProgramArtifact } from "../../runtime/artifact.js";

function program(src: string): Program {
  return buildProgram(compileTokr(src, "batch.tokr"), DEFAULT_TARGET);
}

function refusal(p: Program): string {
  assert.equal(p.batchSymbol, undefined, "expected a refusal");
  assert.ok(p.batchRefusal, "a refusal says why");
  return p.batchRefusal;
}

describe("batch separability", () => {
  it("accepts per-example ops: matmul, layernorm, softmax, reductions over inner axes, views", () => {
    const p = program(`
dim = 16
model m(x: f32[B, dim], z: f32[B, 3, dim]) -> (y: f32[B, dim], u: f32[B, 3, dim], v: f32[B, 48]) {
  param w: f32[dim, dim] = normal(std: 0.3)
  y = softmax(layernorm(matmul(x, w), axis: -1), axis: -1)
  u = z * 2.0 + reduce_mean(z, axes: [1], keepdims: 1)
  v = reshape(transpose(z, perm: [0, 2, 1]), [0, -1]) + 1.0
}
`);
    assert.equal(p.batchRefusal, undefined);
    assert.equal(p.batchSymbol, "B");
  });

  it("refuses a ReduceMean over the batch axis, naming the node", () => {
    const why = refusal(
      program(`
model m(x: f32[B, 16]) -> (y: f32[B, 16]) {
  mu = reduce_mean(x, axes: [0], keepdims: 1)
  y = x - mu
}
`),
    );
    assert.match(
      why,
      /mixes examples along its batch axis B at batch\.tokr:3:\d+: node %\w+ \(ReduceMean\): its output %\w+ \[1, 16\] does not keep B/,
    );
  });

  it("accepts a Transpose that moves B inside the graph and back", () => {
    const p = program(`
model m(x: f32[B, 4, 16]) -> (y: f32[B, 16, 4]) {
  t = transpose(x, perm: [1, 0, 2]) * 2.0
  y = transpose(t, perm: [1, 2, 0])
}
`);
    assert.equal(p.batchRefusal, undefined);
    assert.equal(p.batchSymbol, "B");
  });

  it("refuses a Transpose moving B out of axis 0 when a reshape then regroups it, naming the node", () => {
    const why = refusal(
      program(`
model m(x: f32[B, 4, 16]) -> (y: f32[B, 64]) {
  t = transpose(x, perm: [1, 0, 2]) * 2.0
  y = reshape(t, [-1, 64])
}
`),
    );
    assert.match(
      why,
      /at batch\.tokr:4:\d+: node %\w+ \(Reshape\): the view regroups the elements of B \(%\w+ \[4, B, 16\]/,
    );
    // Moving B to axis 1 of an output: the runtime could not concatenate slices along axis 0.
    assert.match(
      refusal(program("model m(x: f32[B, 4, 16]) -> (y) {\n  y = transpose(x, perm: [1, 0, 2])\n}\n")),
      /output 'y' \[4, B, 16\] has no symbolic leading axis/,
    );
  });

  it("refuses a softmax across examples and a matmul contracting over B", () => {
    assert.match(
      refusal(program("model m(x: f32[B, 8]) -> (y) {\n  y = softmax(x, axis: 0)\n}\n")),
      /batch\.tokr:2:\d+: node %\w+ \(Softmax\): Softmax has no rule keeping the rows of axis 0/,
    );
    assert.match(
      refusal(
        program(`
model m(x: f32[B, 8], z: f32[B, 8]) -> (y: f32[B, 8]) {
  g = matmul(transpose(x, perm: [1, 0]), z)
  y = z + reduce_mean(g, axes: [0], keepdims: 1)
}
`),
      ),
      /mixes examples along its batch axis B/,
    );
  });

  it("refuses graphs whose inputs and outputs have no common leading symbol", () => {
    const why = refusal(
      program(
        "dim = 16\nmodel m(x: f32[B, dim], z: f32[N, dim]) -> (y, u) {\n  y = x * 2.0\n  u = z + 1.0\n}\n",
      ),
    );
    assert.match(why, /different leading symbols/);
    assert.match(
      refusal(program("model m(x: f32[4, 8]) -> (y) {\n  y = x * 2.0\n}\n")),
      /no symbolic leading axis/,
    );
  });

  it("accepts the Fashion-MNIST ViT imported from ONNX", () => {
    const g = fmnistVit();
    const p = buildProgram(g, DEFAULT_TARGET);
    assert.equal(p.batchRefusal, undefined);
    assert.equal(p.batchSymbol, g.inputs[0].type.dims[0] && p.batchSymbol);
    assert.ok(p.batchSymbol);
  });

  it("carries the decision through the artifact manifest; older manifests load as not separable", async () => {
    const roundTrip = async (p: Program, edit?: (m: Record<string, unknown>) => void) => {
      const files = writeProgramArtifact(compileProgram(p, "wgsl", DEFAULT_TARGET, renderWgsl));
      if (edit) {
        const m = JSON.parse(new TextDecoder().decode(files.get("manifest.json"))) as Record<string, unknown>;
        edit(m.program as Record<string, unknown>);
        files.set("manifest.json", new TextEncoder().encode(JSON.stringify(m)));
      }
      return loadProgramArtifact(async (name) => files.get(name)!, "mem");
    };
    const ok = program("model m(x: f32[B, 8]) -> (y) {\n  y = x * 2.0\n}\n");
    assert.equal((await roundTrip(ok)).batchSymbol, "B");
    const bad = program("model m(x: f32[B, 8]) -> (y) {\n  y = softmax(x, axis: 0)\n}\n");
    const back = await roundTrip(bad);
    assert.equal(back.batchSymbol, undefined);
    assert.equal(back.batchRefusal, bad.batchRefusal);
    const old = await roundTrip(ok, (p) => delete p.batchSymbol);
    assert.equal(old.batchSymbol, undefined);
    assert.equal(old.batchRefusal, undefined);
    await assert.rejects(
      roundTrip(ok, (p) => (p.batchSymbol = 3)),
      /mem\/manifest.json: program.batchSymbol is not a string/,
    );
  });

  it("agrees with the reference: accepted graphs give the same outputs run in slices, refused ones differ", () => {
    // Sequence-first attention like the exported ViT: B moves to axis 1, merges into 2*B heads and
    // 6*B rows (B an inner factor), and comes back to axis 0.
    const seqFirst = `
model m(x: f32[B, 6, 8]) -> (y: f32[B, 6, 8]) {
  param w: f32[8, 8] = normal(std: 0.3)
  t = transpose(x, perm: [1, 0, 2])
  h = transpose(reshape(matmul(t, w), [0, -1, 4]), perm: [1, 0, 2])
  a = matmul(softmax(matmul(h, transpose(h, perm: [0, 2, 1])), axis: -1), h)
  r = reshape(transpose(a, perm: [1, 0, 2]), [-1, 8])
  y = transpose(reshape(layernorm(r, axis: -1), [6, -1, 8]), perm: [1, 0, 2])
}
`;
    const across =
      "model m(x: f32[B, 6, 8]) -> (y: f32[B, 6, 8]) {\n  y = x - reduce_mean(x, axes: [0], keepdims: 1)\n}\n";
    const regroup = `
model m(x: f32[B, 6, 8]) -> (y: f32[B, 48]) {
  y = reshape(transpose(x, perm: [1, 0, 2]) * 2.0, [-1, 48])
}
`;
    const x = seeded("f32", [5, 6, 8], 11);
    for (const [src, separable] of [
      [seqFirst, true],
      [across, false],
      [regroup, false],
    ] as const) {
      const g = compileTokr(src, "batch.tokr");
      assert.equal(buildProgram(g, DEFAULT_TARGET).batchSymbol !== undefined, separable, src);
      const whole = runGraph(g, new Map([["x", x]])).get("y")!;
      const sliced = concatRows([rows(x, 0, 2), rows(x, 2, 5)].map((t) => run(g, t)));
      if (separable) assertClose(sliced, whole, 1e-5, "slices vs whole");
      else
        assert.ok(
          sliced.data.some((v, i) => Math.abs(v - whole.data[i]) > 1e-3),
          `slices agree for\n${src}`,
        );
    }
  });
});

function run(g: Graph, x: Tensor): Tensor {
  return runGraph(g, new Map([["x", x]])).get("y")!;
}

function rows(t: Tensor, start: number, end: number): Tensor {
  const inner = numel(t.shape.slice(1));
  return {
    dtype: t.dtype,
    shape: [end - start, ...t.shape.slice(1)],
    data: t.data.slice(start * inner, end * inner),
  };
}

function concatRows(ts: readonly Tensor[]): Tensor {
  const data = allocData(
    ts[0].dtype,
    ts.reduce((a, t) => a + t.data.length, 0),
  );
  let off = 0;
  for (const t of ts) {
    data.set(t.data, off);
    off += t.data.length;
  }
  return {
    dtype: ts[0].dtype,
    shape: [ts.reduce((a, t) => a + t.shape[0], 0), ...ts[0].shape.slice(1)],
    data,
  };
}
