import assert from "node:assert/strict";
import { test } from "node:test";
import { runOpOnKir } from "../../compiler/kir/run.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { cases } from "../backends/cases/tokens.js";
import { compare, prepare } from "../backends/cases/run.js";

// The shared table requests every output (the references return them all); nodes often use
// only y, so each multi-output token case also runs with the leading outputs alone.
for (const c of cases.filter((x) => (x.numOutputs ?? 1) > 1)) {
  for (let k = 1; k < (c.numOutputs ?? 1); k++) {
    // Adaptive prune: the count output exists only with all three outputs.
    if (c.op === "tokens.prune" && c.attrs?.threshold !== undefined) continue;
    test(`kir: ${c.name} with ${k} output(s)`, () => {
      const p = prepare({ ...c, numOutputs: k });
      const got = runOpOnKir(
        p.def,
        c.attrs ?? {},
        p.inTypes,
        p.outTypes,
        c.inputs,
        c.env ?? {},
        DEFAULT_TARGET,
      );
      assert.equal(got.length, k);
      assert.deepEqual(compare(c, got, p.want.slice(0, k)), []);
    });
  }
}
