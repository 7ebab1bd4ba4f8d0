import assert from "node:assert/strict";
import { test } from "node:test";
import { sym } from "../../compiler/ir/sym.js";
import { KernelBuilder, elementwiseKernel, flatGrid, kernelSymbols } from "../../compiler/kir/builder.js";
import {
  KirError,
  add,
  builtin,
  cast,
  dimExpr,
  div,
  eq,
  f32,
  i32,
  lt,
  mod,
  mul,
  subgroup,
} from "../../compiler/kir/expr.js";
import { runKernel } from "../../compiler/kir/interp.js";
import type { Kernel } from "../../compiler/kir/types.js";

/** A workgroup tree reduction of 16 floats per group; `barriers: false` drops the barrier inside the loop. */
function treeSum(barriers: boolean): Kernel {
  const kb = new KernelBuilder("tree_sum", [16, 1, 1]);
  const x = kb.buffer("x", "f32", "read");
  const y = kb.buffer("y", "f32", "read_write");
  const s = kb.array("s", "f32", 16, "workgroup");
  kb.setGrid([2, 1, 1]);
  const l = kb.let("l", builtin("local_id"));
  kb.store(s, l, kb.load(x, builtin("global_id")));
  kb.barrier();
  for (const stride of [8, 4, 2, 1]) {
    kb.if(lt(l, stride), () => kb.store(s, l, add(kb.load(s, l), kb.load(s, add(l, stride)))));
    if (barriers) kb.barrier();
  }
  kb.if(eq(l, 0), () => kb.store(y, builtin("group_id"), kb.load(s, i32(0))));
  return kb.build();
}

test("interp: workgroup tree reduction with barriers is order independent", () => {
  const x = Float32Array.from({ length: 32 }, (_, i) => i + 1);
  for (const order of ["forward", "reverse"] as const) {
    const y = new Float32Array(2);
    runKernel(treeSum(true), { x, y }, {}, { order });
    assert.deepEqual([...y], [136, 392], order);
  }
});

test("interp: a missing barrier gives a wrong result in one of the two orders", () => {
  const x = Float32Array.from({ length: 32 }, (_, i) => i + 1);
  const results = (["forward", "reverse"] as const).map((order) => {
    const y = new Float32Array(2);
    runKernel(treeSum(false), { x, y }, {}, { order });
    return [...y];
  });
  assert.ok(
    results.some((r) => r[0] !== 136 || r[1] !== 392),
    JSON.stringify(results),
  );
});

test("interp: divergent barriers and out-of-bounds accesses are errors", () => {
  const kb = new KernelBuilder("divergent", [4, 1, 1]);
  const y = kb.buffer("y", "f32", "read_write");
  kb.if(
    lt(builtin("local_id"), 2),
    () => kb.barrier(),
    () => kb.barrier(),
  );
  kb.store(y, builtin("local_id"), f32(1));
  assert.throws(() => runKernel(kb.build(), { y: new Float32Array(4) }), /divergent barrier/);

  const oob = elementwiseKernel("oob", 8, 8, (k) => {
    const o = k.buffer("o", "f32", "read_write");
    return (i) => k.store(o, add(i, 1), f32(0));
  });
  assert.throws(
    () => runKernel(oob, { o: new Float32Array(8) }),
    /kernel oob: write of 'o'\[8\] out of bounds/,
  );
});

test("interp: symbolic sizes come from the bindings and fold large grids into 2-D", () => {
  const N = sym("N");
  const k = elementwiseKernel("iota", N, 4, (kb) => {
    const o = kb.buffer("o", "i32", "read_write");
    return (i) => kb.store(o, i, mul(i, 3));
  });
  assert.deepEqual(kernelSymbols(k), ["N"]);
  const o = new Int32Array(10);
  runKernel(k, { o }, { N: 10 });
  assert.deepEqual([...o], [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
  assert.throws(() => runKernel(k, { o }, {}), /symbol 'N' is not bound/);
  const { grid } = flatGrid(70000 * 64, 64);
  assert.deepEqual(grid, [65535, 2, 1]);
});

test("interp: integer division truncates, float->int casts saturate, f16 rounds", () => {
  const k = elementwiseKernel("arith", 4, 4, (kb) => {
    const a = kb.buffer("a", "i32", "read_write");
    const f = kb.buffer("f", "f16", "read_write");
    return (i) => {
      kb.store(a, i, add(div(i32(-7), 2), mod(i32(7), 3)));
      kb.store(f, i, add(cast(i, "f16"), { k: "const", t: "f16", v: 0.1 }));
    };
  });
  const a = new Int32Array(4);
  const f = new Float32Array(4);
  runKernel(k, { a, f });
  assert.deepEqual([...a], [-2, -2, -2, -2]);
  assert.equal(f[0], 0.0999755859375); // 0.1 in f16
  const sat = elementwiseKernel("sat", 1, 1, (kb) => {
    const o = kb.buffer("o", "i32", "read_write");
    return (i) => kb.store(o, i, cast(f32(1e12), "i32"));
  });
  const o = new Int32Array(1);
  runKernel(sat, { o });
  assert.equal(o[0], 2 ** 31 - 1);
  assert.equal(dimExpr(sym("N")).k, "sym");
});

test("interp: subgroup reductions and xor shuffles", () => {
  const kb = new KernelBuilder("sg", [16, 1, 1]);
  const x = kb.buffer("x", "f32", "read");
  const y = kb.buffer("y", "f32", "read_write");
  const z = kb.buffer("z", "f32", "read_write");
  const l = kb.let("l", builtin("local_id"));
  const v = kb.load(x, l);
  const s = kb.let("s", subgroup("add", v));
  const sh = kb.let("sh", subgroup("shuffle_xor", v, i32(1)));
  kb.store(y, l, s);
  kb.store(z, l, sh);
  const k = kb.build();
  const xs = Float32Array.from({ length: 16 }, (_, i) => i);
  const ys = new Float32Array(16);
  const zs = new Float32Array(16);
  runKernel(k, { x: xs, y: ys, z: zs }, {}, { subgroupSize: 8 });
  assert.equal(ys[0], 28);
  assert.equal(ys[15], 92);
  assert.deepEqual([...zs.slice(0, 4)], [1, 0, 3, 2]);
});

test("builder: type errors are reported when the kernel is built", () => {
  const kb = new KernelBuilder("bad", [1, 1, 1]);
  const o = kb.buffer("o", "f32", "read_write");
  assert.throws(() => kb.store(o, i32(0), i32(1)), KirError);
  assert.throws(() => add(f32(1), i32(1)), /operand types differ/);
  const r = kb.buffer("r", "f32", "read");
  assert.throws(() => kb.store(r, i32(0), f32(1)), /read-only/);
});
