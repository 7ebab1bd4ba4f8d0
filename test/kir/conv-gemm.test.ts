import assert from "node:assert/strict";
import { test } from "node:test";
import { lowerCtx } from "../../compiler/kir/lower.js";
import { runLowered } from "../../compiler/kir/run.js";
import { DEFAULT_TARGET } from "../../compiler/kir/types.js";
import { MATMUL_VARIANTS, lowerConv } from "../../compiler/ops/linalg-lower.js";
import { cases } from "../backends/cases/linalg.js";
import { compare, prepare } from "../backends/cases/run.js";

// Ungrouped unpadded Convs lower to the GEMM kernel of the target's matmul variant; the shared
// runner covers the default variant, every variant runs here against the reference.
const CONVS = cases.filter((c) => c.op === "Conv");
const isGemm = (name: string): boolean => name.startsWith("Conv/gemm-");

for (const v of MATMUL_VARIANTS) {
  test(`conv on matmul variant ${v.name}: every Conv case in both invocation orders`, () => {
    const target = { ...DEFAULT_TARGET, matmul: v.style, matmulVariant: v.name };
    for (const c of CONVS) {
      const p = prepare(c);
      const lowering = lowerConv(lowerCtx(p.def, "conv", c.attrs ?? {}, p.inTypes, p.outTypes, target));
      const k = lowering.launches[0].kernel;
      assert.equal(k.name.endsWith(`_${v.name}`), isGemm(c.name), `${c.name}: kernel ${k.name}`);
      for (const order of ["forward", "reverse"] as const) {
        const got = runLowered(lowering, c.inputs, p.outTypes, c.env ?? {}, target, { order });
        assert.deepEqual(compare(c, got, p.want), [], `${c.name} (${order})`);
      }
    }
  });
}

test("conv: the GEMM cases exist and padded or grouped Convs keep the direct kernel", () => {
  assert.equal(CONVS.filter((c) => isGemm(c.name)).length, 3);
  assert.ok(CONVS.some((c) => !isGemm(c.name) && (c.attrs?.group ?? 1) !== 1));
});
