import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { evalDim, sym } from "../../compiler/ir/sym.js";
import { t } from "../util/helpers.js";
import { sliceAxis, sliceAxisSym } from "../../compiler/ops/known.js";
import { refRun } from "./shape-util.js";

/** Slice against an element-by-element walk of the ONNX spec, and symbolic sizes against concrete ones. */

const I64_MAX = Number(2n ** 63n - 1n);
const I64_MIN = -(2 ** 63);
const bound = fc.oneof(fc.integer({ min: -15, max: 15 }), fc.constantFrom(I64_MAX, I64_MIN));
const step = fc.integer({ min: -4, max: 4 }).filter((s) => s !== 0);

/** The spec's effective bounds, then a plain loop (no length formula). */
function walk(d: number, start: number, end: number, st: number): number[] {
  const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  [s, e] = st > 0 ? [clamp(s, 0, d), clamp(e, 0, d)] : [clamp(s, 0, d - 1), clamp(e, -1, d - 1)];
  const out: number[] = [];
  for (let i = s; st > 0 ? i < e : i > e; i += st) out.push(i);
  return out;
}

test("Slice on a vector equals a walk of the spec's clamped bounds", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 12 }), bound, bound, step, (d, s, e, st) => {
      const x = t(
        "i64",
        [d],
        Array.from({ length: d }, (_, i) => i),
      );
      const [y] = refRun("Slice", [x, t("i64", [1], [s]), t("i64", [1], [e]), null, t("i64", [1], [st])]);
      assert.deepEqual(Array.from(y.data), walk(d, s, e, st));
    }),
    { numRuns: 300 },
  );
});

test("a symbolic slice length evaluates to the concrete one once N exceeds the constants", () => {
  const N = sym("N");
  const fail = (m: string): never => assert.fail(m);
  fc.assert(
    fc.property(fc.integer({ min: 31, max: 60 }), bound, bound, step, (n, s, e, st) => {
      const len = sliceAxisSym(N, s, e, st, fail);
      assert.equal(evalDim(len, { N: n }), sliceAxis(n, s, e, st).len);
    }),
    { numRuns: 300 },
  );
});
