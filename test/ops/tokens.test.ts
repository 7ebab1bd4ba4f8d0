import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { parseDim, printDim, sym } from "../../compiler/ir/sym.js";
import { printType } from "../../compiler/ir/types.js";
import { formatDiagnostic, verifyGraph } from "../../compiler/verify.js";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { assertClose, t } from "../util/helpers.js";
import { runSingleOp } from "./single-op.js";

// x rows are [j, 10 j] so every output row names its source position.
const x5 = t("f32", [1, 5, 2], [0, 0, 1, 10, 2, 20, 3, 30, 4, 40]);
// CLS (position 0) has the lowest score; positions 1 and 3 tie at 0.9.
const s5 = t("f32", [1, 5], [0.1, 0.9, 0.3, 0.9, 0.5]);

test("prune: static keep keeps CLS, the top scores, original order and the index", () => {
  // Ranking: CLS (protected), 1 (0.9), 3 (0.9, tie -> lower index after 1), 4 (0.5), 2 (0.3).
  const { outs } = runSingleOp("tokens.prune", [x5, s5], { keep: 3, protect_first: 1 }, 2);
  assertClose(outs[0], t("f32", [1, 3, 2], [0, 0, 1, 10, 3, 30]));
  assertClose(outs[1], t("i64", [1, 3], [0, 1, 3]));
  // keep = 2: the tie between 1 and 3 goes to the lower index.
  const two = runSingleOp("tokens.prune", [x5, s5], { keep: 2, protect_first: 1 }, 2).outs;
  assertClose(two[1], t("i64", [1, 2], [0, 1]));
  // Without protection, CLS (0.1) is the first to go.
  const noCls = runSingleOp("tokens.prune", [x5, s5], { keep: 4 }, 2).outs;
  assertClose(noCls[1], t("i64", [1, 4], [1, 2, 3, 4]));
});

test("prune: protect input ([N] and [B, N]) adds to protect_first", () => {
  const protect = t("bool", [5], [0, 0, 1, 0, 0]);
  const { outs } = runSingleOp("tokens.prune", [x5, s5, protect], { keep: 3, protect_first: 1 }, 2);
  assertClose(outs[1], t("i64", [1, 3], [0, 1, 2]));
  // Two examples, per-example protection: example 1 protects position 4.
  const x = t("f32", [2, 4, 1], [0, 1, 2, 3, 10, 11, 12, 13]);
  const s = t("f32", [2, 4], [0.4, 0.1, 0.3, 0.2, 0.1, 0.9, 0.8, 0.0]);
  const p = t("bool", [2, 4], [0, 0, 0, 0, 0, 0, 0, 1]);
  const res = runSingleOp("tokens.prune", [x, s, p], { keep: 2 }, 2).outs;
  assertClose(res[0], t("f32", [2, 2, 1], [0, 2, 11, 13]));
  assertClose(res[1], t("i64", [2, 2], [0, 2, 1, 3]));
});

test("prune: fuse appends the score-weighted average of the dropped tokens", () => {
  // Dropped: 2 (0.3) and 4 (0.5) -> weights 3/8, 5/8 -> [3/8*2 + 5/8*4, ...] = [3.25, 32.5].
  const { outs } = runSingleOp("tokens.prune", [x5, s5], { keep: 3, protect_first: 1, fuse: true }, 2);
  assertClose(outs[0], t("f32", [1, 4, 2], [0, 0, 1, 10, 3, 30, 3.25, 32.5]));
  assertClose(outs[1], t("i64", [1, 3], [0, 1, 3]));
  // Dropped scores summing to 0: a plain mean of 2 and 4.
  const zero = t("f32", [1, 5], [0.1, 0.9, 0, 0.9, 0]);
  const y = runSingleOp("tokens.prune", [x5, zero], { keep: 3, protect_first: 1, fuse: true }).outs[0];
  assertClose(y, t("f32", [1, 4, 2], [0, 0, 1, 10, 3, 30, 3, 30]));
});

// Example 0 candidates: 0 (protected), 1 (.9), 4 (.7), 2 (.6) -> capacity 3 keeps 0, 1, 4.
// Example 1 candidates: 0, 2 (.5 >= .5) -> count 2.
const xa = t("f32", [2, 5, 1], [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]);
const sa = t("f32", [2, 5], [0, 0.9, 0.6, 0.2, 0.7, 0, 0.1, 0.5, 0.2, 0.3]);
const adaptive = { threshold: 0.5, capacity: 3, protect_first: 1 };

test("prune: adaptive threshold/capacity with count; K is the max count", () => {
  const { outs, g } = runSingleOp("tokens.prune", [xa, sa], adaptive, 3);
  assertClose(outs[0], t("f32", [2, 3, 1], [0, 1, 4, 10, 12, 0]));
  assertClose(outs[1], t("i64", [2, 3], [0, 1, 4, 0, 2, -1]));
  assertClose(outs[2], t("i32", [2], [3, 2]));
  assert.equal(printType(g.outputs[0].type), "f32[2, K0, 1]");
  assert.equal(printType(g.outputs[1].type), "i64[2, K0]");
  assert.equal(printDim(g.symbols.get("K0")!.capacity!), "3");
  // Lower capacity: example 0 loses 4 (0.7 < 0.9), and K = 2 for the batch.
  const two = runSingleOp("tokens.prune", [xa, sa], { ...adaptive, capacity: 2 }, 3).outs;
  assertClose(two[1], t("i64", [2, 2], [0, 1, 0, 2]));
  assertClose(two[2], t("i32", [2], [2, 2]));
});

test("prune: adaptive fuse puts the fused row right after each example's kept rows", () => {
  // Ex 0 drops 2 (.6), 3 (.2) -> .75*2 + .25*3 = 2.25. Ex 1 drops 11, 13, 14 with .1, .2, .3 -> 79/6.
  const { outs, g } = runSingleOp("tokens.prune", [xa, sa], { ...adaptive, fuse: true }, 3);
  assertClose(outs[0], t("f32", [2, 4, 1], [0, 1, 4, 2.25, 10, 12, 79 / 6, 0]));
  assertClose(outs[1], t("i64", [2, 3], [0, 1, 4, 0, 2, -1]));
  assertClose(outs[2], t("i32", [2], [3, 2]));
  // The symbol counts y's rows (fused row included); the index has one fewer.
  assert.equal(printType(g.outputs[0].type), "f32[2, K0, 1]");
  assert.equal(printType(g.outputs[1].type), "i64[2, K0 - 1]");
  assert.equal(printDim(g.symbols.get("K0")!.capacity!), "4");
});

test("prune: symbolic keep ceildiv(7*N, 10) infers and runs", () => {
  const b = new GraphBuilder("g");
  for (const s of ["B", "N", "C"]) b.symbol(s);
  const x = b.input("x", "f32", [sym("B"), sym("N"), sym("C")], ["batch", "token", "channel"]);
  const s = b.input("s", "f32", [sym("B"), sym("N")]);
  const keep = parseDim("ceildiv(7*N, 10)");
  const [y, idx] = b.ops("tokens.prune", [x, s], { keep }, 2);
  assert.equal(printType(y.type), "f32[B@batch, ceildiv(7*N, 10)@token, C@channel]");
  assert.equal(printType(idx.type), "i64[B@batch, ceildiv(7*N, 10)@token]");
  const g = b.output(y, idx);
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), []);
  // N = 10 -> keep 7: the three lowest scores (positions 0, 5, 9) go.
  const scores = [0, 5, 6, 7, 8, 1, 9, 4, 3, 2];
  const res = runGraph(
    g,
    new Map([
      ["x", t("f32", [1, 10, 1], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])],
      ["s", t("f32", [1, 10], scores)],
    ]),
  );
  assertClose(res.get(idx.name)!, t("i64", [1, 7], [1, 2, 3, 4, 6, 7, 8]));
});

test("prune: adaptive capacity symbolic; verification reads the declared symbol", () => {
  const b = new GraphBuilder("g");
  for (const s of ["B", "N"]) b.symbol(s);
  const x = b.input("x", "f32", [sym("B"), sym("N"), 2]);
  const s = b.input("s", "f32", [sym("B"), sym("N")]);
  const outs = b.ops(
    "tokens.prune",
    [x, s],
    { threshold: 0, capacity: parseDim("ceildiv(N, 2)"), fuse: true },
    3,
  );
  const g = b.output(...outs);
  assert.deepEqual([...g.symbols.keys()], ["B", "N", "K0"]);
  assert.equal(printDim(g.symbols.get("K0")!.capacity!), "ceildiv(N, 2) + 1");
  assert.deepEqual(
    outs.map((o) => printType(o.type)),
    ["f32[B, K0, 2]", "i64[B, K0 - 1]", "i32[B]"],
  );
  assert.deepEqual(verifyGraph(g).map(formatDiagnostic), []);
});

test("prune: infer errors", () => {
  const b = new GraphBuilder("g");
  const x = b.input("x", "f32", [1, 5, 2]);
  const s = b.input("s", "f32", [1, 5]);
  assert.throws(() => b.ops("tokens.prune", [x, s], { keep: 6 }), /keep = 6 is greater than the 5 tokens/);
  assert.throws(
    () => b.ops("tokens.prune", [x, s], { keep: 1, protect_first: 2 }),
    /less than protect_first = 2/,
  );
  const s4 = b.input("s4", "f32", [1, 4]);
  assert.throws(
    () => b.ops("tokens.prune", [x, s4], { keep: 2 }),
    /scores has shape \[1, 4\], expected \[1, 5\]/,
  );
  assert.throws(
    () => b.ops("tokens.prune", [x, s], { keep: 2, threshold: 0.5, capacity: 3 }),
    /either keep or/,
  );
  assert.throws(() => b.ops("tokens.prune", [x, s], { threshold: 0.5 }), /needs both threshold and capacity/);
  assert.throws(() => b.ops("tokens.prune", [x, s], {}), /missing attribute 'keep'/);
  assert.throws(
    () => b.ops("tokens.prune", [x, s], { keep: 2 }, 3),
    /count output exists only in adaptive mode/,
  );
});

// The 5-token merge example (protect_first = 1): A = positions 1, 3; B = positions 2, 4.
// Metrics: 1 [1,0], 2 [2,0], 3 [0,1], 4 [1,1]. cos(1,2) = 1, cos(1,4) = .707; cos(3,2) = 0, cos(3,4) = .707.
// Best edges: 1 -> 2 (1.0), 3 -> 4 (.707); r = 1 merges 1 into 2 first.
const xm = t("f32", [1, 5, 2], [100, 0, 1, -1, 2, -2, 3, -3, 4, -4]);
const mm = t("f32", [1, 5, 2], [1, 0, 1, 0, 2, 0, 0, 1, 1, 1]);
const sizes = t("f32", [1, 5, 1], [1, 3, 1, 2, 1]);

test("merge: 5-token example, r = 1 and r = 2 (sizes, weighted averages, source map)", () => {
  // r = 1: row of 2 = (3*x1 + 1*x2) / 4 = [1.25, -1.25], size 4. Survivors 0, 2, 3, 4 in order.
  const one = runSingleOp("tokens.merge", [xm, mm, sizes], { r: 1 }, 3).outs;
  assertClose(one[0], t("f32", [1, 4, 2], [100, 0, 1.25, -1.25, 3, -3, 4, -4]));
  assertClose(one[1], t("f32", [1, 4, 1], [1, 4, 2, 1]));
  assertClose(one[2], t("i64", [1, 5], [0, 1, 1, 2, 3]));
  // r = 2: also 3 into 4: (2*x3 + 1*x4) / 3 = [10/3, -10/3], size 3.
  const two = runSingleOp("tokens.merge", [xm, mm, sizes], { r: 2 }, 3).outs;
  assertClose(two[0], t("f32", [1, 3, 2], [100, 0, 1.25, -1.25, 10 / 3, -10 / 3]));
  assertClose(two[1], t("f32", [1, 3, 1], [1, 4, 3]));
  assertClose(two[2], t("i64", [1, 5], [0, 1, 1, 2, 2]));
});

test("merge: crossed edges, ties, absent sizes, two examples", () => {
  // Example 0: metrics 1 [1,0], 2 [0,1], 3 [0,1], 4 [1,1]: 1 -> 4 (.707), 3 -> 2 (1.0).
  // Example 1: every metric equal: each a picks b = 2 (lowest), ties in a go to 1 first.
  const x = t("f32", [2, 5, 1], [100, 1, 2, 3, 4, 100, 1, 2, 3, 4]);
  const m = t("f32", [2, 5, 2], [9, 9, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  const one = runSingleOp("tokens.merge", [x, m], { r: 1 }, 3).outs;
  // Ex 0 merges 3 into 2 -> rows [100, 1, 2.5, 4]. Ex 1 merges 1 into 2 -> rows [100, 1.5, 3, 4].
  assertClose(one[0], t("f32", [2, 4, 1], [100, 1, 2.5, 4, 100, 1.5, 3, 4]));
  assertClose(one[1], t("f32", [2, 4, 1], [1, 1, 2, 1, 1, 2, 1, 1]));
  assertClose(one[2], t("i64", [2, 5], [0, 1, 2, 2, 3, 0, 1, 1, 2, 3]));
  // r = 2: ex 0 also merges 1 into 4 -> [100, 2.5, 2.5]; ex 1 merges 3 into 2 as well -> [100, 2, 4].
  const two = runSingleOp("tokens.merge", [x, m], { r: 2 }, 3).outs;
  assertClose(two[0], t("f32", [2, 3, 1], [100, 2.5, 2.5, 100, 2, 4]));
  assertClose(two[1], t("f32", [2, 3, 1], [1, 2, 2, 1, 3, 1]));
  assertClose(two[2], t("i64", [2, 5], [0, 2, 1, 1, 2, 0, 1, 1, 1, 2]));
});

test("merge: r = 0 is the identity", () => {
  const { outs } = runSingleOp("tokens.merge", [xm, mm, sizes], { r: 0 }, 3);
  assertClose(outs[0], xm);
  assertClose(outs[1], sizes);
  assertClose(outs[2], t("i64", [1, 5], [0, 1, 2, 3, 4]));
});

test("merge: protect_first = 0 lets position 0 merge", () => {
  // A = 0, 2; B = 1, 3. Metrics: 0 [1,0], 1 [1,0], 2 [0,1], 3 [1,1]: 0 -> 1 (1.0) is the best edge.
  const x = t("f32", [1, 4, 1], [10, 20, 30, 40]);
  const m = t("f32", [1, 4, 2], [1, 0, 1, 0, 0, 1, 1, 1]);
  const { outs } = runSingleOp("tokens.merge", [x, m], { r: 1, protect_first: 0 }, 3);
  assertClose(outs[0], t("f32", [1, 3, 1], [15, 30, 40]));
  assertClose(outs[2], t("i64", [1, 4], [0, 0, 1, 2]));
});

test("merge: symbolic inference and errors", () => {
  const b = new GraphBuilder("g");
  for (const s of ["B", "N"]) b.symbol(s);
  const x = b.input("x", "f32", [sym("B"), sym("N"), 8], ["batch", "token", "channel"]);
  const m = b.input("m", "f32", [sym("B"), sym("N"), 4]);
  const [y, size, src] = b.ops("tokens.merge", [x, m], { r: 8 }, 3);
  assert.equal(printType(y.type), "f32[B@batch, N - 8@token, 8@channel]");
  assert.equal(printType(size.type), "f32[B@batch, N - 8@token, 1]");
  assert.equal(printType(src.type), "i64[B@batch, N@token]");

  const x5 = b.input("x5", "f32", [1, 5, 2]);
  const m5 = b.input("m5", "f32", [1, 5, 3]);
  assert.throws(
    () => b.ops("tokens.merge", [x5, m5], { r: 3 }),
    /r = 3 is greater than the 2 mergeable tokens/,
  );
  assert.throws(
    () => b.ops("tokens.merge", [x5, m5], { r: 3, protect_first: 0 }),
    /greater than the 2 mergeable/,
  );
  const m4 = b.input("m4", "f32", [1, 4, 3]);
  assert.throws(
    () => b.ops("tokens.merge", [x5, m4], { r: 1 }),
    /metric has shape \[1, 4, 3\], expected \[1, 5, 3\]/,
  );
  const s2 = b.input("s2", "f32", [1, 5, 2]);
  assert.throws(
    () => b.ops("tokens.merge", [x5, m5, s2], { r: 1 }),
    /size has shape \[1, 5, 2\], expected \[1, 5, 1\]/,
  );
  assert.throws(() => b.ops("tokens.merge", [x5, m5], {}), /missing attribute 'r'/);
});
