/**
 * Graphs shared by the strided-view tests (KIR, WGSL): the exporter's head split around a fused
 * attention, and a Transpose read by a pointwise chain.
 */
import { GraphBuilder } from "../../compiler/builder.js";
import type { Graph, Value } from "../../compiler/ir/graph.js";
import { sym } from "../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";

/** Tokens, channels, heads and head dim of `headSplitGraph`. */
export const HS = { N: 5, C: 8, H: 2, D: 4 } as const;

/** Deterministic values in about [-1, 1]. */
export function wave(shape: readonly number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return makeTensor(
    "f32",
    shape,
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed * 1.7) * Math.cos(i * 0.23 + seed)),
  );
}

/**
 * Per layer of the imported ViT, at small sizes: X [N, B, 3C] = Transpose(x) + 0.5; q, k, v = Slice ->
 * Reshape [N, H*B, D] -> Transpose -> Reshape [B, H, N, D] (k transposed twice more); attention;
 * Reshape -> Transpose -> Reshape [N*B, C] -> MatMul -> Reshape [N, B, C] -> Transpose [B, N, C]
 * + residual r.
 */
export function headSplitGraph(): Graph {
  const { N, C, H, D } = HS;
  const b = new GraphBuilder("head_split");
  b.symbol("B");
  const B = sym("B");
  const x = b.input("x", "f32", [B, N, 3 * C]);
  const r = b.input("r", "f32", [B, N, C]);
  // The ViT's QKV projection runs token-major: [N, B, 3C].
  const X = b.op("Add", [b.op("Transpose", [x], { perm: [1, 0, 2] }), b.const("f32", [], [0.5])]);
  const ints = (vs: number[]): Value => b.const("i64", [vs.length], vs);
  const head = (i: number, extra: boolean): Value => {
    const s = b.op("Slice", [X, ints([i * C]), ints([(i + 1) * C]), ints([2])]);
    const r1 = b.op("Reshape", [s, ints([N, -1, D])]);
    let t = b.op("Transpose", [r1], { perm: [1, 0, 2] });
    // fuse-attention's extra pair on k: two Transposes that cancel.
    if (extra) t = b.op("Transpose", [b.op("Transpose", [t], { perm: [0, 2, 1] })], { perm: [0, 2, 1] });
    return b.op("Reshape", [t, ints([-1, H, N, D])]);
  };
  const a = b.op("attention", [head(0, false), head(1, true), head(2, false), null, null], { scale: 0.5 });
  const m = b.op("Reshape", [a, ints([-1, N, D])]);
  const t4 = b.op("Transpose", [m], { perm: [1, 0, 2] });
  const r3 = b.op("Reshape", [t4, ints([-1, C])]);
  const g = b.op("MatMul", [r3, b.constant(wave([C, C], 9))]);
  const r4 = b.op("Reshape", [g, ints([N, -1, C])]);
  const t5 = b.op("Transpose", [r4], { perm: [1, 0, 2] });
  return b.output(b.op("Add", [t5, r]));
}

/** Feeds of `headSplitGraph` for batch `batch`. */
export function headSplitFeeds(batch: number): Map<string, Tensor> {
  const { N, C } = HS;
  return new Map([
    ["x", wave([batch, N, 3 * C], 1)],
    ["r", wave([batch, N, C], 2)],
  ]);
}
