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
