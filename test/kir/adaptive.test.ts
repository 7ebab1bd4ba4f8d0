import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { buildProgram, ScheduleError } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { runGraph } from "../../backends/cpu/interpreter.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { runProgramOnKir } from "../../compiler/kir/run-program.js";
import { randTensor } from "../backends/cases/types.js";
import { assertClose } from "../util/helpers.js";
import { leadingBox } from "./adaptive-fixtures.js";

// Adaptive token counts run at capacity on devices: a consumer that mixes tokens would read the
// padding rows, so the scheduler refuses it by name instead of computing a wrong mean.
test("schedule: a token-mixing op after an adaptive prune is refused, naming the node and symbol", () => {
  const b = new GraphBuilder("adaptive-mix");
  const x = b.input("x", "f32", [1, 6, 2]);
  const s = b.input("s", "f32", [1, 6]);
  const [y] = b.ops("tokens.prune", [x, s], { threshold: 0.5, capacity: 4 }, 3);
  const m = b.op("ReduceMean", [y], { axes: [1] });
  const g = b.output(m);
  assert.throws(
    () => buildProgram(g, DEFAULT_TARGET),
    (e: unknown) =>
      e instanceof ScheduleError &&
      /ReduceMean/.test(e.message) &&
      /data-dependent/.test(e.message) &&
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
