import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphBuilder } from "../../compiler/builder.js";
import { buildProgram, ScheduleError } from "../../compiler/kir/schedule.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";

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
