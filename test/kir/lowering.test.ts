import assert from "node:assert/strict";
import { test } from "node:test";
import { runOpOnKir } from "../../compiler/kir/run.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { allOps } from "../../compiler/ops/registry.js";
import { ALL_CASES } from "../backends/cases/index.js";
import { compare, prepare } from "../backends/cases/run.js";

// Every op lowering against the op's reference, on the KIR interpreter, in both invocation orders.
for (const c of ALL_CASES) {
  test(`kir: ${c.name}`, () => {
    const p = prepare(c);
    for (const order of ["forward", "reverse"] as const) {
      const got = runOpOnKir(
        p.def,
        c.attrs ?? {},
        p.inTypes,
        p.outTypes,
        c.inputs,
        c.env ?? {},
        DEFAULT_TARGET,
        {
          order,
        },
      );
      assert.deepEqual(compare(c, got, p.want), [], order);
    }
  });
}

test("kir: every op with a kernel lowering has backend cases", () => {
  const covered = new Set(ALL_CASES.map((c) => c.op));
  const missing = allOps()
    .filter((d) => (d.pointwise || d.lower) && !covered.has(d.name))
    .map((d) => d.name);
  assert.deepEqual(missing, []);
});
