import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { buildProgram, ScheduleError } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { RunError, runGraph } from "../../backends/cpu/interpreter.js";
import type { Graph } from "../../compiler/ir/graph.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { randTensor } from "../backends/cases/types.js";
import { assertClose } from "../util/helpers.js";
import { leadingBox } from "./adaptive-fixtures.js";

// Adaptive token counts run at capacity on devices: a consumer that mixes tokens without masking
// would read the padding rows, so the scheduler refuses it by name instead of computing a wrong max.
test("schedule: a token-mixing op after an adaptive prune is refused, naming the node and symbol", () => {
  const b = new GraphBuilder("adaptive-mix");
  const x = b.input("x", "f32", [1, 6, 2]);
  const s = b.input("s", "f32", [1, 6]);
  const [y] = b.ops("tokens.prune", [x, s], { threshold: 0.5, capacity: 4 }, 3);
  const m = b.op("ReduceMax", [y], { axes: [1] });
  const g = b.output(m);
  assert.throws(
    () => buildProgram(g, DEFAULT_TARGET),
    (e: unknown) =>
      e instanceof ScheduleError &&
      /ReduceMax/.test(e.message) &&
      /only sum and mean mask it/.test(e.message) &&
      /data-dependent/.test(e.message) &&
      e.message.includes(y.name),
  );
});

test("runGraph refuses the same op: its reference would mix an example's padding rows into its max", () => {
  const b = new GraphBuilder("adaptive-max");
  const x = b.input("x", "f32", [2, 6, 2]);
  const s = b.input("s", "f32", [2, 6]);
  const [y] = b.ops("tokens.prune", [x, s], { threshold: 0.5, capacity: 4 }, 1);
  const g = b.output(b.op("ReduceMax", [y], { axes: [1] }));
  const feeds = new Map([
    ["x", randTensor("f32", [2, 6, 2], 1)],
    ["s", randTensor("f32", [2, 6], 2, 0, 1)],
  ]);
  assert.throws(
    () => runGraph(g, feeds),
    (e: unknown) =>
      e instanceof RunError &&
      /ReduceMax/.test(e.message) &&
      /per-example length K0/.test(e.message) &&
      e.message.includes(y.name),
  );
});

/** x [2, 6, 4] -> adaptive prune (capacity 4, protect_first 1) with or without its count output. */
function pruned(withCount: boolean): { b: GraphBuilder; y: ReturnType<GraphBuilder["op"]> } {
  const b = new GraphBuilder("adaptive-rules");
  const x = b.input("x", "f32", [2, 6, 4]);
  const s = b.input("s", "f32", [2, 6]);
  const [y] = b.ops(
    "tokens.prune",
    [x, s],
    { threshold: 0.5, capacity: 4, protect_first: 1 },
    withCount ? 3 : 1,
  );
  return { b, y };
}

const refusal = (g: ReturnType<GraphBuilder["output"]>, ...parts: RegExp[]): void =>
  assert.throws(
    () => buildProgram(g, DEFAULT_TARGET),
    (e: unknown) => e instanceof ScheduleError && parts.every((p) => p.test(e.message)),
  );

test("schedule: attention masks by the live count, so a prune without its count output is refused", () => {
  const { b, y } = pruned(false);
  const q = b.op("Unsqueeze", [y, b.const("i64", [1], [1])]);
  refusal(b.output(b.op("attention", [q, q, q])), /\(attention\)/, /K0/, /needs its count output/);
  const ok = pruned(true);
  const q2 = ok.b.op("Unsqueeze", [ok.y, ok.b.const("i64", [1], [1])]);
  const p = buildProgram(ok.b.output(ok.b.op("attention", [q2, q2, q2])), DEFAULT_TARGET);
  const step = p.steps.find((st) => p.kernels[st.kernel].params.some((pr) => pr.name.startsWith("live_K0")));
  assert.ok(step, "the attention kernel binds the count buffer");
});

test("schedule: a MatMul contracting over the padded axis is refused, one over rows is not", () => {
  const { b, y } = pruned(true);
  const yt = b.op("Transpose", [y], { perm: [0, 2, 1] });
  refusal(
    b.output(b.op("MatMul", [yt, y])),
    /\(MatMul\)/,
    /axis 2 has the data-dependent length K0/,
    /contracts over the padded axis/,
  );
  const rows = pruned(true);
  const w = rows.b.const("f32", [4, 3], new Array<number>(12).fill(0.5));
  assert.ok(buildProgram(rows.b.output(rows.b.op("MatMul", [rows.y, w])), DEFAULT_TARGET).steps.length > 0);
});

test("schedule: Gather along the padded axis only at rows every example keeps (below protect_first)", () => {
  const bad = pruned(true);
  refusal(
    bad.b.output(bad.b.op("Gather", [bad.y, bad.b.const("i64", [], [1])], { axis: 1 })),
    /\(Gather\)/,
    /constants in \[0, 1\)/,
  );
  const ok = pruned(true);
  assert.ok(
    buildProgram(
      ok.b.output(ok.b.op("Gather", [ok.y, ok.b.const("i64", [], [0])], { axis: 1 })),
      DEFAULT_TARGET,
    ),
  );
});

test("row-wise ops on a padded axis (norms, Softmax over channels, Transpose) match runGraph on the live rows", () => {
  const { b, y } = pruned(true);
  const ln = b.op("LayerNormalization", [
    y,
    b.const("f32", [4], [1, 2, 3, 4]),
    b.const("f32", [4], [0, 1, 0, 1]),
  ]);
  const rms = b.op("RMSNorm", [ln, b.const("f32", [4], [0.5, 1, 1.5, 2])]);
  const sm = b.op("Softmax", [rms], { axis: -1 });
  const g = b.output(b.op("Transpose", [sm], { perm: [0, 2, 1] }));
  const feeds = new Map([
    ["x", randTensor("f32", [2, 6, 4], 3)],
    ["s", makeTensor("f32", [2, 6], [0.9, 0.1, 0.7, 0.6, 0.2, 0.1, 0.1, 0.2, 0.3, 0.9, 0.1, 0.1])],
  ]);
  const want = runGraph(g, feeds).get(g.outputs[0].name)!;
  assert.deepEqual([...want.shape], [2, 4, 3], "live length 3 (counts 3 and 2)");
  for (const order of ["forward", "reverse"] as const) {
    const got = runProgramOnKir(buildProgram(g, DEFAULT_TARGET), feeds, { order }).get(g.outputs[0].name)!;
    assertClose(leadingBox(got, want.shape), want, 1e-5, order);
  }
});

/** Example b of `t` (batch axis 0), as a batch of one. */
function exampleOf(t: Tensor, b: number): Tensor {
  const [B, ...rest] = t.shape;
  const n = t.data.length / B;
  return makeTensor(t.dtype, [1, ...rest], t.data.slice(b * n, (b + 1) * n));
}

interface PropCase {
  readonly fuse: boolean;
  readonly attn: { scores: "cls" | "colsum" | "graph"; causal?: boolean };
}

/**
 * x [B, 7, 4] -> adaptive prune -> attention (q = k = v, 1 head) with importance -> LayerNorm ->
 * an adaptive prune (EViT fuse) by 1 - importance -> attention (causal as the first). Outputs:
 * first count, attention out, importance, second y and count, final attention out, the mean of the
 * LayerNorm rows over tokens, the sum of the final attention over tokens and channels, the Softmax
 * of 1 - importance over tokens.
 */
function propGraph(B: number, c: PropCase): Graph {
  const b = new GraphBuilder(`adaptive-prop-${B}`);
  const x = b.input("x", "f32", [B, 7, 4]);
  const s = b.input("s", "f32", [B, 7]);
  const [y, , count] = b.ops(
    "tokens.prune",
    [x, s],
    { threshold: 0.5, capacity: 5, protect_first: 1, fuse: c.fuse },
    3,
  );
  const one = b.const("i64", [1], [1]);
  const t = b.op("Unsqueeze", [y, one]);
  const [o, imp] = b.ops("attention", [t, t, t], c.attn, 2);
  const o3 = b.op("Squeeze", [o, one]);
  const ln = b.op("LayerNormalization", [
    o3,
    b.const("f32", [4], [1, 0.5, 2, 1]),
    b.const("f32", [4], [0.1, 0, -0.2, 0.3]),
  ]);
  const score = b.op("Sub", [b.const("f32", [], [1]), imp]);
  const [z, , count2] = b.ops(
    "tokens.prune",
    [ln, score],
    { threshold: 0.7, capacity: 4, protect_first: 1, fuse: true },
    3,
  );
  const t2 = b.op("Unsqueeze", [z, one]);
  const [o2] = b.ops("attention", [t2, t2, t2], { causal: c.attn.causal ?? false }, 1);
  // Mean pooling over each example's own tokens, and a sum over tokens and channels.
  const pooled = b.op("ReduceMean", [ln], { axes: [1], keepdims: 0 });
  const total = b.op("ReduceSum", [b.op("Squeeze", [o2, one])], { axes: [1, 2] });
  const soft = b.op("Softmax", [score], { axis: 1 });
  return b.output(count, o, imp, z, count2, o2, pooled, total, soft);
}

// ATS semantics: each example keeps its own tokens, so its results cannot depend on the batch.
test("an example's outputs after adaptive prunes are the same alone and in any batch (reference and KIR)", () => {
  const cases: PropCase[] = [
    { fuse: false, attn: { scores: "cls" } },
    { fuse: true, attn: { scores: "colsum", causal: true } },
    { fuse: false, attn: { scores: "graph" } },
  ];
  let unequal = 0;
  for (let trial = 0; trial < 6; trial++) {
    const c = cases[trial % cases.length];
    const B = 2 + (trial % 3);
    const x = randTensor("f32", [B, 7, 4], 100 + trial);
    const s = randTensor("f32", [B, 7], 200 + trial, 0, 1);
    const g = propGraph(B, c);
    const batched = runGraph(
      g,
      new Map([
        ["x", x],
        ["s", s],
      ]),
    );
    const counts = Array.from(batched.get(g.outputs[0].name)!.data);
    if (new Set(counts).size > 1) unequal++;
    const alone1 = propGraph(1, c);
    for (let e = 0; e < B; e++) {
      const alone = runGraph(
        alone1,
        new Map([
          ["x", exampleOf(x, e)],
          ["s", exampleOf(s, e)],
        ]),
      );
      g.outputs.forEach((v, i) => {
        const want = alone.get(alone1.outputs[i].name)!;
        const got = exampleOf(batched.get(v.name)!, e);
        const what = `trial ${trial} (counts ${counts}), example ${e}, output ${i}`;
        assertClose(leadingBox(got, want.shape), want, 1e-9, what);
        // Rows past the example's own ones are padding: 0 in attention outputs and importance.
        if (i === 1 || i === 2 || i === 5 || i === 8)
          for (let k = want.data.length; k < got.data.length; k++) assert.equal(got.data[k], 0, what);
      });
    }
    // Devices give the batched reference on the live rows.
    if (trial < 3) {
      const got = runProgramOnKir(
        buildProgram(g, DEFAULT_TARGET),
        new Map([
          ["x", x],
          ["s", s],
        ]),
      );
      for (const v of g.outputs)
        assertClose(
          leadingBox(got.get(v.name)!, batched.get(v.name)!.shape),
          batched.get(v.name)!,
          1e-4,
          v.name,
        );
    }
  }
  assert.ok(unequal >= 3, `only ${unequal} of 6 batches had unequal counts`);
});

// The rows attention kernel covers 8 * 4 query rows per workgroup at head dim 4; with capacity 70
// an example keeping 6 tokens leaves two workgroups of padding only, which visit no key. Their
// rows (and for importance, the rows the launches read) must still match the reference.
test("attention after an adaptive prune: workgroups of padding rows only give 0 rows and the reference's importance", () => {
  const N = 80;
  for (const scores of ["none", "cls", "colsum", "graph"] as const) {
    const b = new GraphBuilder(`adaptive-padding-${scores}`);
    const x = b.input("x", "f32", [2, N, 4]);
    const s = b.input("s", "f32", [2, N]);
    const [y, , count] = b.ops("tokens.prune", [x, s], { threshold: 0.5, capacity: 70, protect_first: 1 }, 3);
    const t = b.op("Unsqueeze", [y, b.const("i64", [1], [1])]);
    const outs = b.ops("attention", [t, t, t], { scores }, scores === "none" ? 1 : 2);
    const g = b.output(count, ...outs);
    // Example 0 keeps CLS + 5 tokens; example 1 keeps CLS + the 60 tokens scoring 0.9.
    const sv = new Float32Array(2 * N);
    for (let i = 0; i < N; i++) {
      sv[i] = i >= 10 && i < 15 ? 0.9 : 0.1;
      sv[N + i] = i >= 5 && i < 65 ? 0.9 : 0.1;
    }
    const feeds = new Map([
      ["x", randTensor("f32", [2, N, 4], 7)],
      ["s", makeTensor("f32", [2, N], sv)],
    ]);
    const want = runGraph(g, feeds);
    assert.deepEqual(Array.from(want.get(g.outputs[0].name)!.data), [6, 61]);
    const got = runProgramOnKir(buildProgram(g, DEFAULT_TARGET), feeds);
    for (const v of g.outputs)
      assertClose(
        leadingBox(got.get(v.name)!, want.get(v.name)!.shape),
        want.get(v.name)!,
        1e-5,
        `${scores}: ${v.name}`,
      );
    // Example 0's padding rows (6..69) of the attention output are 0 (-0 where a row was computed and scaled by 0).
    const o = got.get(g.outputs[1].name)!;
    for (let r = 6; r < 70; r++)
      for (let c = 0; c < 4; c++) assert.ok(o.data[r * 4 + c] === 0, `${scores}: padding row ${r}`);
    // Rows 32..69 fill workgroups of padding only: they visit no key, so their accumulators stay +0
    // (a row that visited keys and was scaled by 0 gives -0 wherever its sum was negative).
    for (let r = 32; r < 70; r++)
      for (let c = 0; c < 4; c++)
        assert.ok(Object.is(o.data[r * 4 + c], 0), `${scores}: padding-only workgroup row ${r} visited keys`);
  }
});

// GPU targets take the `workgroup` attention variant: with "cls" scores, a mask, a bias and a live
// count it must still fit the WebGPU default of 8 storage buffers (row 0's probabilities stay in
// the full scratch) and match the reference.
test("workgroup attention with cls scores, mask, bias and a live count fits 8 storage buffers", () => {
  const N = 12;
  const target = { ...DEFAULT_TARGET, matmul: "tiled" as const };
  const b = new GraphBuilder("cls-buffers");
  const x = b.input("x", "f32", [2, N, 4]);
  const s = b.input("s", "f32", [2, N]);
  const [y, , count] = b.ops("tokens.prune", [x, s], { threshold: 0.5, capacity: 10, protect_first: 1 }, 3);
  const t = b.op("Unsqueeze", [y, b.const("i64", [1], [1])]);
  const mask = b.input("mask", "bool", [1, 1, 1, 1]);
  const bias = b.input("bias", "f32", [1, 1, 1, 1]);
  const g = b.output(count, ...b.ops("attention", [t, t, t, mask, bias], { scores: "cls" }, 2));
  const feeds = new Map([
    ["x", randTensor("f32", [2, N, 4], 3)],
    [
      "s",
      makeTensor(
        "f32",
        [2, N],
        new Float32Array(2 * N).map((_, i) => (i % 3 === 0 ? 0.9 : 0.1)),
      ),
    ],
    ["mask", makeTensor("bool", [1, 1, 1, 1], [1])],
    ["bias", makeTensor("f32", [1, 1, 1, 1], [0.5])],
  ]);
  const p = buildProgram(g, target);
  const attn = p.kernels.filter((k) => k.name.endsWith("_attn"));
  assert.equal(attn.length, 1, "the workgroup variant's main kernel");
  assert.equal(attn[0].params.length, 8, attn[0].params.map((q) => q.name).join(", "));
  const want = runGraph(g, feeds);
  const got = runProgramOnKir(p, feeds);
  for (const v of g.outputs)
    assertClose(leadingBox(got.get(v.name)!, want.get(v.name)!.shape), want.get(v.name)!, 1e-5, v.name);
});
