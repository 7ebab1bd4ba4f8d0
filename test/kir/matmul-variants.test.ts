import assert from "node:assert/strict";
import { test } from "node:test";
import { runLowered } from "../../compiler/kir/run.js";
import { lowerCtx } from "../../compiler/kir/lower.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import {
  MATMUL_VARIANTS,
  defaultMatmulVariant,
  lowerMatmul,
  matmulLowering,
} from "../../compiler/ops/linalg-lower.js";
import { cases } from "../backends/cases/linalg.js";
import { compare, prepare } from "../backends/cases/run.js";

// The shared runner uses DEFAULT_TARGET (register matmuls); every variant runs here.
const MATMULS = cases.filter((c) => c.op === "MatMul" || c.op === "Gemm");

for (const v of MATMUL_VARIANTS) {
  test(`matmul variant ${v.name}: every MatMul/Gemm case in both invocation orders`, () => {
    for (const c of MATMULS) {
      const p = prepare(c);
      const ctx = lowerCtx(p.def, "mm", c.attrs ?? {}, p.inTypes, p.outTypes, DEFAULT_TARGET);
      const lowering = matmulLowering(ctx, v);
      assert.equal(lowering.launches[0].kernel.arrays.length > 0, v.style === "tiled", c.name);
      for (const order of ["forward", "reverse"] as const) {
        const got = runLowered(lowering, c.inputs, p.outTypes, c.env ?? {}, DEFAULT_TARGET, { order });
        assert.deepEqual(compare(c, got, p.want), [], `${c.name} (${order})`);
      }
    }
  });
}

test("matmul: Target.matmul picks the style; register kernels have no barriers or workgroup arrays", () => {
  const c = MATMULS[0];
  const p = prepare(c);
  for (const style of ["register", "tiled"] as const) {
    const target = { ...DEFAULT_TARGET, matmul: style };
    const k = lowerMatmul(lowerCtx(p.def, "mm", {}, p.inTypes, p.outTypes, target)).launches[0].kernel;
    const text = JSON.stringify(k.body);
    assert.equal(text.includes('"barrier"'), style === "tiled", style);
    assert.equal(k.arrays.length > 0, style === "tiled", style);
  }
});

test("matmul: Target.matmulVariant picks a variant by name (the autotuner's choice)", () => {
  const c = MATMULS[0];
  const p = prepare(c);
  for (const v of MATMUL_VARIANTS) {
    const target = { ...DEFAULT_TARGET, matmul: v.style, matmulVariant: v.name };
    assert.equal(defaultMatmulVariant(target), v);
    const k = lowerMatmul(lowerCtx(p.def, "mm", {}, p.inTypes, p.outTypes, target)).launches[0].kernel;
    assert.ok(k.name.endsWith(`_${v.name}`), k.name);
    assert.deepEqual(k.workgroupSize, [v.wgx, v.wgy, 1]);
  }
  assert.equal(defaultMatmulVariant(DEFAULT_TARGET), MATMUL_VARIANTS[0]);
});

test("matmul: an unknown or mismatched Target.matmulVariant is an error naming it", () => {
  assert.throws(
    () => defaultMatmulVariant({ ...DEFAULT_TARGET, matmulVariant: "nope" }),
    /unknown matmul variant 'nope' \(known: reg4x4,/,
  );
  const tiled = MATMUL_VARIANTS.find((v) => v.style === "tiled")!;
  assert.throws(
    () => defaultMatmulVariant({ ...DEFAULT_TARGET, matmul: "register", matmulVariant: tiled.name }),
    /is of style tiled, the target's is register/,
  );
});
