import assert from "node:assert/strict";
import { test } from "node:test";
import { makeTensor } from "../../compiler/ir/tensor.js";
import { lowerCtx, lowerNode } from "../../compiler/kir/lower.js";
import { runOpOnKir } from "../../compiler/kir/run.js";
import { DEFAULT_TARGET, type Lowering, type Target } from "../../compiler/kir/types.js";
import { getOp, refCtx } from "../../compiler/ops/registry.js";
import { tensorType } from "../../compiler/ir/types.js";
import { cases as elementwise } from "../backends/cases/elementwise.js";
import { cases as norm } from "../backends/cases/norm.js";
import { cases as reduce } from "../backends/cases/reduce.js";
import { cases as shape } from "../backends/cases/shape.js";
import { compare, prepare } from "../backends/cases/run.js";
import type { OpCase } from "../backends/cases/types.js";

// The shape/reduce/norm lowerings under other targets than the default: workgroup rows with tree
// and subgroup reductions (lavapipe's 8 lanes, and wider subgroups than the target promised),
// small workgroup and binding limits. lowering.test.ts runs every case on DEFAULT_TARGET.

const OURS: readonly OpCase[] = [...elementwise, ...shape, ...reduce, ...norm];
const ROWS = [...reduce, ...norm];

function lower(c: OpCase, target: Target, name = "node7"): Lowering {
  const p = prepare(c);
  return lowerNode(p.def, lowerCtx(p.def, name, c.attrs ?? {}, p.inTypes, p.outTypes, target));
}

function check(c: OpCase, target: Target, subgroupSize?: number): void {
  const p = prepare(c);
  for (const order of ["forward", "reverse"] as const) {
    const got = runOpOnKir(p.def, c.attrs ?? {}, p.inTypes, p.outTypes, c.inputs, c.env ?? {}, target, {
      order,
      ...(subgroupSize ? { subgroupSize } : {}),
    });
    assert.deepEqual(compare(c, got, p.want), [], `${c.name} ${order}`);
  }
}

/** GPU-style targets: rows go to workgroups (DEFAULT_TARGET's register style runs them serially). */
const GPU: Target = { ...DEFAULT_TARGET, matmul: "tiled" };
const SUBGROUPS: Target = { ...GPU, subgroups: true, subgroupSize: 8 };

test("rows: workgroup tree reductions match the reference", () => {
  let groups = 0;
  for (const c of ROWS) {
    if (lower(c, GPU).launches.some((l) => l.kernel.workgroupSize[0] > 64 || hasBarrier(l))) groups++;
    check(c, GPU);
  }
  assert.ok(groups >= 30, `only ${groups} cases took the workgroup path`);
});

test("rows: a CPU-style (register) target runs rows without barriers", () => {
  for (const c of ROWS) for (const l of lower(c, DEFAULT_TARGET).launches) assert.ok(!hasBarrier(l), c.name);
});

function hasBarrier(l: Lowering["launches"][number]): boolean {
  return JSON.stringify(l.kernel.body).includes('"barrier"');
}

test("rows: subgroup reductions match the reference (8 lanes, and 32 when 8 were promised)", () => {
  let used = 0;
  for (const c of ROWS) {
    if (lower(c, SUBGROUPS).launches.some((l) => l.kernel.features.includes("subgroups"))) used++;
    check(c, SUBGROUPS, 8);
    check(c, SUBGROUPS, 32);
  }
  assert.ok(used >= 20, `only ${used} cases took the subgroup path`);
});

test("rows: a 32-invocation workgroup limit is kept and still matches", () => {
  const small: Target = { ...GPU, maxWorkgroupInvocations: 32 };
  for (const c of ROWS) {
    for (const l of lower(c, small).launches) {
      const [x, y, z] = l.kernel.workgroupSize;
      assert.ok(x * y * z <= 32, `${c.name}: ${x * y * z} invocations`);
    }
    check(c, small);
  }
});

test("lowerings: kernels are named after the node and stay within the binding limit", () => {
  for (const c of OURS) {
    for (const l of lower(c, DEFAULT_TARGET).launches) {
      assert.ok(l.kernel.name.startsWith("node7"), `${c.name}: ${l.kernel.name}`);
      assert.ok(l.kernel.params.length <= DEFAULT_TARGET.maxStorageBuffersPerStage, c.name);
      assert.equal(l.args.length, l.kernel.params.length, c.name);
    }
  }
});

test("Concat: a 4-binding device splits nine inputs over launches of at most 3 inputs", () => {
  const narrow: Target = { ...DEFAULT_TARGET, maxStorageBuffersPerStage: 4 };
  const c = shape.find((x) => x.name === "Concat/nine-inputs")!;
  const l = lower(c, narrow);
  assert.equal(l.launches.length, 3);
  for (const x of l.launches) assert.ok(x.kernel.params.length <= 4);
  check(c, narrow);
});

test("Reduce: axes given as an input that the types cannot pin down are an error naming the fix", () => {
  const def = getOp("ReduceSum")!;
  const x = tensorType("f32", [3, 3]);
  const ctx = lowerCtx(
    def,
    "r",
    { keepdims: 0 },
    [x, tensorType("i64", [1])],
    [tensorType("f32", [3])],
    DEFAULT_TARGET,
  );
  assert.throws(() => lowerNode(def, ctx), /cannot tell the reduced axes.*attribute or keepdims = 1/);
  // With keepdims the same node is unambiguous.
  const kept = lowerCtx(
    def,
    "r",
    {},
    [x, tensorType("i64", [1])],
    [tensorType("f32", [1, 3])],
    DEFAULT_TARGET,
  );
  const got = runOpOnKir(
    def,
    {},
    kept.inputs,
    kept.outputs,
    [makeTensor("f32", [3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]), makeTensor("i64", [1], [0])],
    {},
    DEFAULT_TARGET,
  );
  assert.deepEqual([...got[0].data], [12, 15, 18]);
});

test("Range: float ranges (which inference cannot size from graph inputs) match the reference", () => {
  const def = getOp("Range")!;
  const s = (v: number) => makeTensor("f32", [], [v]);
  const inputs = [s(0.5), s(3), s(0.75)];
  const scalar = tensorType("f32", []);
  const got = runOpOnKir(
    def,
    {},
    [scalar, scalar, scalar],
    [tensorType("f32", [4])],
    inputs,
    {},
    DEFAULT_TARGET,
  );
  const want = def.reference(inputs, refCtx(def, {}, 1));
  assert.deepEqual([...got[0].data], [...want[0].data]);
  assert.deepEqual([...got[0].data], [0.5, 1.25, 2, 2.75]);
});
