import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { computeKnown, makeInferCtx } from "../../compiler/infer.js";
import type { Attrs } from "../../compiler/ir/attrs.js";
import { parseDim, printDim, sym } from "../../compiler/ir/sym.js";
import { printType } from "../../compiler/ir/types.js";
import { getOp } from "../../compiler/ops/registry.js";
import { formatDiagnostic, verifyGraph } from "../../compiler/verify.js";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { assertClose, t } from "../util/helpers.js";
import { runSingleOp } from "./single-op.js";

const iota = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

test("pool stride: CLS kept, pairs averaged, the last partial group averages what it covers", () => {
  const x = t("f32", [1, 6, 1], [100, 1, 2, 3, 4, 5]);
  const { outs } = runSingleOp("tokens.pool", [x], { mode: "stride", size: 2, protect_first: 1 }, 2);
  assertClose(outs[0], t("f32", [1, 4, 1], [100, 1.5, 3.5, 5]));
  assertClose(outs[1], t("f32", [1, 4, 1], [1, 2, 2, 1]));
  // Stride 3 without protection: [100, 1, 2], [3, 4, 5].
  const three = runSingleOp("tokens.pool", [x], { mode: "stride", size: 3 }).outs[0];
  assertClose(three, t("f32", [1, 2, 1], [103 / 3, 4]));
});

test("pool spatial: 4x4 grid with 2x2 windows, two examples, two channels", () => {
  // Token (i, j) of example b is [b*100 + 4i + j, -(4i + j)].
  const vals: number[] = [];
  for (let b = 0; b < 2; b++) for (let u = 0; u < 16; u++) vals.push(b * 100 + u, -u);
  const { outs } = runSingleOp("tokens.pool", [t("f32", [2, 16, 2], vals)], { mode: "spatial", size: 2 }, 2);
  // Windows {0,1,4,5} -> 2.5, {2,3,6,7} -> 4.5, {8,9,12,13} -> 10.5, {10,11,14,15} -> 12.5.
  const w = [2.5, 4.5, 10.5, 12.5];
  assertClose(
    outs[0],
    t("f32", [2, 4, 2], [...w.flatMap((v) => [v, -v]), ...w.flatMap((v) => [100 + v, -v])]),
  );
  assertClose(outs[1], t("f32", [2, 4, 1], [4, 4, 4, 4, 4, 4, 4, 4]));
});

test("pool spatial: square grid inferred after CLS; edges of a 3x3 grid give partial windows", () => {
  const x = t("f32", [1, 10, 1], [-1, ...iota(9)]);
  const { outs } = runSingleOp("tokens.pool", [x], { mode: "spatial", size: 2, protect_first: 1 }, 2);
  // {0,1,3,4} -> 2, {2,5} -> 3.5, {6,7} -> 6.5, {8} -> 8.
  assertClose(outs[0], t("f32", [1, 5, 1], [-1, 2, 3.5, 6.5, 8]));
  assertClose(outs[1], t("f32", [1, 5, 1], [1, 4, 2, 2, 1]));
  // A 2x3 grid given explicitly: rows [0 1 2], [3 4 5] -> {0,1,3,4} -> 2, {2,5} -> 3.5.
  const g = runSingleOp("tokens.pool", [t("f32", [1, 6, 1], iota(6))], {
    mode: "spatial",
    size: 2,
    grid: [2, 3],
  });
  assertClose(g.outs[0], t("f32", [1, 2, 1], [2, 3.5]));
});

test("pool temporal: frames grouped per spatial position, a leftover frame stays alone", () => {
  // CLS, then 3 frames of 2 tokens: f0 = [0, 10], f1 = [2, 12], f2 = [4, 14].
  const x = t("f32", [1, 7, 1], [-1, 0, 10, 2, 12, 4, 14]);
  const attrs = { mode: "temporal", size: 2, protect_first: 1, frames: 3 };
  const { outs } = runSingleOp("tokens.pool", [x], attrs, 2);
  // Groups: (f0, f1) at positions 0 and 1, then f2 alone: [1, 11, 4, 14].
  assertClose(outs[0], t("f32", [1, 5, 1], [-1, 1, 11, 4, 14]));
  assertClose(outs[1], t("f32", [1, 5, 1], [1, 2, 2, 1, 1]));
});

test("pool with sizes: size-weighted means and summed sizes; zero sizes fall back to a plain mean", () => {
  const x = t("f32", [1, 5, 1], [100, 0, 4, 10, 20]);
  const size = t("f32", [1, 5, 1], [7, 1, 3, 2, 2]);
  const { outs } = runSingleOp("tokens.pool", [x, size], { mode: "stride", size: 2, protect_first: 1 }, 2);
  // (1*0 + 3*4) / 4 = 3; (2*10 + 2*20) / 4 = 15; the protected row keeps its size 7.
  assertClose(outs[0], t("f32", [1, 3, 1], [100, 3, 15]));
  assertClose(outs[1], t("f32", [1, 3, 1], [7, 4, 4]));
  const zero = t("f32", [1, 5, 1], [0, 0, 0, 2, 2]);
  const z = runSingleOp("tokens.pool", [x, zero], { mode: "stride", size: 2, protect_first: 1 }, 2).outs;
  assertClose(z[0], t("f32", [1, 3, 1], [100, 2, 15]));
  assertClose(z[1], t("f32", [1, 3, 1], [0, 0, 4]));
});

test("pool: symbolic token counts where divisibility is provable", () => {
  const b = new GraphBuilder("g");
  for (const s of ["B", "N", "T", "H", "W"]) b.symbol(s);
  let inputs = 0;
  const pool = (n: string, attrs: Attrs): string => {
    const x = b.input(`x${inputs++}`, "f32", [sym("B"), parseDim(n), 8], ["batch", "token", "channel"]);
    const [y, sizes] = b.ops("tokens.pool", [x], attrs, 2);
    // size_out has y's batch and token dims.
    assert.deepEqual(sizes.type.dims.slice(0, 2), y.type.dims.slice(0, 2));
    return printType(y.type);
  };
  assert.equal(
    pool("N", { mode: "stride", size: 2, protect_first: 1 }),
    "f32[B@batch, ceildiv(N + 1, 2)@token, 8@channel]",
  );
  assert.equal(
    pool("8*T + 1", { mode: "temporal", size: 2, frames: 8, protect_first: 1 }),
    "f32[B@batch, 4*T + 1@token, 8@channel]",
  );
  assert.equal(
    pool("H*W + 1", { mode: "spatial", size: 2, protect_first: 1, grid: [sym("H"), sym("W")] }),
    "f32[B@batch, ceildiv(H, 2)*ceildiv(W, 2) + 1@token, 8@channel]",
  );
  const xn = b.input("xn", "f32", [sym("B"), sym("N"), 8]);
  assert.throws(
    () => b.ops("tokens.pool", [xn], { mode: "temporal", size: 2, frames: 8, protect_first: 1 }),
    /the N - 1 tokens after protect_first are not provably a multiple of frames = 8/,
  );
  assert.throws(
    () => b.ops("tokens.pool", [xn], { mode: "spatial", size: 2, protect_first: 1 }),
    /spatial pooling of N - 1 tokens needs the grid attribute/,
  );
  assert.throws(
    () => b.ops("tokens.pool", [xn], { mode: "spatial", size: 2, grid: [14, 14] }),
    /grid \[14, 14\] does not cover the N tokens after protect_first/,
  );
});

test("pool: a symbolic graph verifies and runs (temporal, N = 4*T + 1)", () => {
  const b = new GraphBuilder("g");
  b.symbol("T");
  // The interpreter binds T from the second input's shape.
  const x = b.input("x", "f32", [1, parseDim("4*T + 1"), 1]);
  b.input("t", "f32", [sym("T")]);
  const [y, s] = b.ops("tokens.pool", [x], { mode: "temporal", size: 2, frames: 4, protect_first: 1 }, 2);
  const g = b.output(y, s);
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), []);
  // T = 2: frames [0 1] [2 3] [4 5] [6 7] -> groups (f0, f1) -> [1, 2], (f2, f3) -> [5, 6].
  const res = runGraph(
    g,
    new Map([
      ["x", t("f32", [1, 9, 1], [9, ...iota(8)])],
      ["t", t("f32", [2], [0, 0])],
    ]),
  );
  assertClose(res.get(y.name)!, t("f32", [1, 5, 1], [9, 1, 2, 5, 6]));
});

test("pool: infer errors", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "f32", [1, 10, 2]);
  const bad = (attrs: Attrs, re: RegExp, inputs = [x]): void => {
    assert.throws(() => b.ops("tokens.pool", inputs, attrs), re);
  };
  bad({ mode: "stride", size: 1 }, /size must be >= 2, got 1/);
  bad({ mode: "stride", size: 2, grid: [3, 3] }, /grid applies only to mode "spatial", not "stride"/);
  bad({ mode: "spatial", size: 2, frames: 2 }, /frames applies only to mode "temporal"/);
  bad({ mode: "spatial", size: 2 }, /10 tokens do not form a square grid; give the grid attribute/);
  bad({ mode: "spatial", size: 2, grid: [3, 4] }, /grid \[3, 4\] does not cover the 10 tokens/);
  bad({ mode: "spatial", size: 2, grid: [9] }, /grid must be \[H, W\]/);
  bad({ mode: "temporal", size: 2 }, /mode "temporal" needs the frames attribute/);
  bad(
    { mode: "temporal", size: 2, frames: 3 },
    /the 10 tokens after protect_first are not a multiple of frames = 3/,
  );
  bad({ mode: "stride", size: 2, protect_first: 11 }, /protect_first = 11 is greater than the 10 tokens/);
  bad({ mode: "box", size: 2 }, /must be one of/);
  bad({ mode: "stride" }, /missing attribute 'size'/);
  const s2 = b.input("s2", "f32", [1, 10, 2]);
  bad({ mode: "stride", size: 2 }, /size has shape \[1, 10, 2\], expected \[1, 10, 1\]/, [x, s2]);
});

test("pool: flops count every element once (2 per element, +2 per token with sizes)", () => {
  const b = new GraphBuilder("g");
  for (const s of ["B", "N"]) b.symbol(s);
  const x = b.input("x", "f32", [sym("B"), sym("N"), 8]);
  const s = b.input("s", "f32", [sym("B"), sym("N"), 1]);
  const def = getOp("tokens.pool")!;
  const flops = (inputs: (typeof x)[]): string => {
    const graph = b.output(x);
    const attrs = { mode: "stride", size: 2 };
    const ctx = makeInferCtx(graph, def, { op: def.name, attrs, inputs }, 1, {
      known: computeKnown(graph),
      dataDims: "mint",
    });
    return printDim(def.flops!(ctx, def.infer(ctx)));
  };
  assert.equal(flops([x]), "16*B*N");
  assert.equal(flops([x, s]), "18*B*N");
});
