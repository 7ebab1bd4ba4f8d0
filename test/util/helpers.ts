import assert from "node:assert/strict";
import { join } from "node:path";
import type { DType } from "../../compiler/ir/dtype.js";
import { makeTensor, type Tensor } from "../../compiler/ir/tensor.js";
import { repoRootFrom } from "../../scripts/paths.js";

/** The repository root, found from this file whether it runs from test/ (tsx) or dist/test/ (compiled). */
export const repoRoot: string = repoRootFrom(import.meta.url);

/** `../shared` beside the repository (real models and data). */
export const sharedDir = join(repoRoot, "..", "shared");

export function t(dtype: DType, shape: number[], values: number[]): Tensor {
  return makeTensor(dtype, shape, values);
}

/** Asserts dtype, shape and values within `tol` (absolute + relative), reporting the first mismatch. */
export function assertClose(actual: Tensor, expected: Tensor, tol = 1e-5, what = "tensor"): void {
  assert.equal(actual.dtype, expected.dtype, `${what}: dtype`);
  assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i];
    const e = expected.data[i];
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue;
    const ok = Math.abs(a - e) <= tol * (1 + Math.abs(e));
    if (!ok) assert.fail(`${what}: element ${i} is ${a}, expected ${e} (tol ${tol})`);
  }
}

/**
 * A backend test's skip reason, unless CI demands the backend (`TOKR_REQUIRE_BACKENDS=1`, set by `.ci/run`):
 * then a missing adapter or toolchain fails the run instead of silently skipping its tests.
 */
export function skipUnlessRequired<T extends string | false>(reason: T): T {
  if (reason && process.env.TOKR_REQUIRE_BACKENDS === "1")
    throw new Error(`TOKR_REQUIRE_BACKENDS=1 but a backend is unavailable: ${reason}`);
  return reason;
}
