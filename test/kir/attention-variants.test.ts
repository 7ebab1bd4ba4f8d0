import assert from "node:assert/strict";
import { test } from "node:test";
import { lowerCtx } from "../../compiler/kir/lower.js";
import { runLowered } from "../../compiler/kir/run.js";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { DEFAULT_TARGET, type Lowering, type Target } from "../../compiler/kir/types.js";
import {
  ATTENTION_VARIANTS,
  type RowsTuning,
  attentionLowering,
  lowerAttention,
} from "../../compiler/ops/attention-lower.js";
import { randTensor } from "../backends/cases/types.js";
import { cases } from "../backends/cases/attention.js";
import { compare, prepare } from "../backends/cases/run.js";
import type { OpCase } from "../backends/cases/types.js";

// Both main-kernel variants on every attention case (the shared runner only sees the default).
const TILED: Target = { ...DEFAULT_TARGET, matmul: "tiled" };

function lower(
  c: OpCase,
  target: Target,
  variant?: (typeof ATTENTION_VARIANTS)[number],
  tuning?: RowsTuning,
): Lowering {
  const p = prepare(c);
  const ctx = lowerCtx(p.def, "att", c.attrs ?? {}, p.inTypes, p.outTypes, target);
  return variant ? attentionLowering(ctx, variant, tuning) : lowerAttention(ctx);
}

const hasBarrier = (l: Lowering): boolean => JSON.stringify(l.launches[0].kernel.body).includes('"barrier"');

for (const v of ATTENTION_VARIANTS) {
  test(`attention variant ${v}: every attention case in both invocation orders`, () => {
    for (const c of cases) {
      const p = prepare(c);
      const lowering = lower(c, DEFAULT_TARGET, v);
      assert.equal(hasBarrier(lowering), v === "workgroup", c.name);
      for (const order of ["forward", "reverse"] as const) {
        const got = runLowered(lowering, c.inputs, p.outTypes, c.env ?? {}, DEFAULT_TARGET, { order });
        assert.deepEqual(compare(c, got, p.want), [], `${c.name} (${order})`);
      }
    }
  });
}

// Every code path of the rows kernel: private-array two pass, branchy online, 1 / 2 / 3 rows per
// invocation, 4-lane workgroups.
const TUNINGS: readonly RowsTuning[] = [
  { rows: 1 },
  { rows: 2, wg: 4 },
  { rows: 3 },
  { online: true, rows: 2 },
];

for (const t of TUNINGS)
  test(`attention rows ${JSON.stringify(t)}: every attention case`, () => {
    for (const c of cases) {
      const p = prepare(c);
      const lowering = lower(c, DEFAULT_TARGET, "rows", t);
      for (const order of ["forward", "reverse"] as const) {
        const got = runLowered(lowering, c.inputs, p.outTypes, c.env ?? {}, DEFAULT_TARGET, { order });
        assert.deepEqual(compare(c, got, p.want), [], `${c.name} (${order})`);
      }
    }
  });

test("attention: register targets take rows (no workgroup memory), tiled targets the workgroup kernel", () => {
  const c = cases[0];
  const rows = lower(c, DEFAULT_TARGET);
  assert.equal(rows.launches[0].kernel.arrays.filter((a) => a.scope === "workgroup").length, 0);
  assert.ok(!hasBarrier(rows));
  // Without importance scores the rows variant needs no probability scratch.
  assert.deepEqual(rows.scratch, []);
  const wg = lower(c, TILED);
  assert.ok(hasBarrier(wg));
  assert.ok(wg.launches[0].kernel.arrays.length > 0);
});

test("attention: head dims past the register limit fall back to the workgroup kernel", () => {
  const big: OpCase = {
    name: "attention/wide-head",
    op: "attention",
    inputs: [
      randTensor("f32", [1, 1, 3, 80], 1),
      randTensor("f32", [1, 1, 4, 80], 2),
      randTensor("f32", [1, 1, 4, 8], 3),
    ],
    tol: 1e-4,
  };
  const l = lower(big, DEFAULT_TARGET);
  assert.ok(hasBarrier(l));
  const p = prepare(big);
  assert.deepEqual(compare(big, runLowered(l, big.inputs, p.outTypes, {}, DEFAULT_TARGET), p.want), []);
});

test("attention rows: a running max that grows rescales earlier keys (hand-checked)", () => {
  // One query, three keys with scores 0, 1, 2 (q = [1], k = [0, 1, 2], scale 1): increasing, so
  // every key raises the max. p = softmax([0, 1, 2]); out = sum p_j v_j with v = [1, 10, 100].
  const mk = (shape: number[], data: number[]) => makeTensor("f32", shape, data);
  const c: OpCase = {
    name: "attention/growing-max",
    op: "attention",
    attrs: { scale: 1 },
    inputs: [mk([1, 1, 1, 1], [1]), mk([1, 1, 3, 1], [0, 1, 2]), mk([1, 1, 3, 1], [1, 10, 100])],
    tol: 1e-6,
  };
  const e = [0, 1, 2].map(Math.exp);
  const sum = e[0] + e[1] + e[2];
  const want = (e[0] * 1 + e[1] * 10 + e[2] * 100) / sum;
  const p = prepare(c);
  const got = runLowered(lower(c, DEFAULT_TARGET, "rows"), c.inputs, p.outTypes, {}, DEFAULT_TARGET);
  assert.ok(Math.abs(got[0].data[0] - want) < 1e-4 * want, `${got[0].data[0]} vs ${want}`);
});
