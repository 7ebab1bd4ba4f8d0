/**
 * Kernels that exercise every KIR primitive, shared by the WGSL render test (structure, Dawn
 * compile) and the WebGPU run test (values against JS). Each writes op j of element i to
 * `out[i * ops.length + j]`, over a symbolic element count N.
 */
import { sym } from "../../compiler/ir/sym.js";
import { elementwiseKernel, KernelBuilder } from "../../compiler/kir/builder.js";
import {
  add,
  and,
  binary,
  builtin,
  cast,
  eq,
  ge,
  i32,
  lit,
  lt,
  mul,
  ne,
  or,
  select,
  subgroup,
  unary,
} from "../../compiler/kir/expr.js";
import type { BinOp, Kernel, UnOp } from "../../compiler/kir/types.js";

export const N = sym("N");
export const FLOAT_UNARY: readonly UnOp[] = [
  "neg",
  "abs",
  "exp",
  "log",
  "sqrt",
  "rsqrt",
  "tanh",
  "erf",
  "floor",
  "ceil",
];
export const INT_UNARY: readonly UnOp[] = ["neg", "abs"];
export const ARITH: readonly BinOp[] = ["add", "sub", "mul", "div", "mod", "min", "max"];
export const FLOAT_ARITH: readonly BinOp[] = [...ARITH, "pow"];
export const COMPARE: readonly BinOp[] = ["lt", "le", "gt", "ge", "eq", "ne"];

/** out[i*U + j] = unary_j(x[i]). */
export function unaryKernel(t: "f32" | "f16" | "i32"): Kernel {
  const ops = t === "i32" ? INT_UNARY : FLOAT_UNARY;
  return elementwiseKernel(`unary_${t}`, N, 64, (kb) => {
    const x = kb.buffer("x", t, "read");
    const out = kb.buffer("out", t, "read_write");
    return (i) => {
      const v = kb.let("v", kb.load(x, i));
      ops.forEach((op, j) => kb.store(out, add(mul(i, ops.length), j), unary(op, v)));
    };
  });
}

/** out[i*A + j] = arith_j(a[i], b[i]); cmp[i*C + j] = u32(compare_j(a[i], b[i])). */
export function binaryKernel(t: "f32" | "f16" | "i32"): Kernel {
  const ops = t === "i32" ? ARITH : FLOAT_ARITH;
  return elementwiseKernel(`binary_${t}`, N, 64, (kb) => {
    const a = kb.buffer("a", t, "read");
    const b = kb.buffer("b", t, "read");
    const out = kb.buffer("out", t, "read_write");
    const cmp = kb.buffer("cmp", "u32", "read_write");
    return (i) => {
      const x = kb.let("x", kb.load(a, i));
      const y = kb.let("y", kb.load(b, i));
      ops.forEach((op, j) => kb.store(out, add(mul(i, ops.length), j), binary(op, x, y)));
      COMPARE.forEach((op, j) =>
        kb.store(cmp, add(mul(i, COMPARE.length), j), cast(binary(op, x, y), "u32")),
      );
    };
  });
}

/** Bool logic over u32 0/1 storage: [and, or, not a, eq, ne, select(a, 7, 9)]. */
export function boolKernel(): Kernel {
  return elementwiseKernel("logic", N, 64, (kb) => {
    const a = kb.buffer("a", "u32", "read");
    const b = kb.buffer("b", "u32", "read");
    const out = kb.buffer("out", "u32", "read_write");
    return (i) => {
      const x = kb.let("x", cast(kb.load(a, i), "bool"));
      const y = kb.let("y", cast(kb.load(b, i), "bool"));
      const vals = [and(x, y), or(x, y), unary("not", x), eq(x, y), ne(x, y)].map((e) => cast(e, "u32"));
      vals.push(select(x, lit(7, "u32"), lit(9, "u32")));
      vals.forEach((v, j) => kb.store(out, add(mul(i, 6), j), v));
    };
  });
}

/** Casts of f32 x: [i32(x), f32(i32(x)), u32(bool(x)), f32(f16(x)), i32(u32(bool))]. */
export function castKernel(): Kernel {
  return elementwiseKernel("casts", N, 64, (kb) => {
    kb.use("f16");
    const x = kb.buffer("x", "f32", "read");
    const out = kb.buffer("out", "f32", "read_write");
    return (i) => {
      const v = kb.let("v", kb.load(x, i));
      const vals = [
        cast(cast(v, "i32"), "f32"),
        cast(cast(cast(v, "bool"), "u32"), "f32"),
        cast(cast(v, "f16"), "f32"),
        cast(cast(cast(v, "u32"), "i32"), "f32"),
      ];
      vals.forEach((e, j) => kb.store(out, add(mul(i, vals.length), j), e));
    };
  });
}

/** Special constants: [inf, -inf, nan, -0, 3.5, 1e-30] as f32 and as f16, and i32 min. */
export const SPECIAL = [Infinity, -Infinity, NaN, -0, 3.5, 1e-30];
export function constKernel(): Kernel {
  const kb = new KernelBuilder("consts", [1, 1, 1]);
  kb.use("f16");
  const f = kb.buffer("f", "f32", "read_write");
  const h = kb.buffer("h", "f16", "read_write");
  const n = kb.buffer("n", "i32", "read_write");
  SPECIAL.forEach((v, j) => {
    kb.store(f, i32(j), lit(v, "f32"));
    kb.store(h, i32(j), lit(v, "f16"));
  });
  kb.store(n, i32(0), lit(-(2 ** 31), "i32"));
  kb.store(n, i32(1), lit(2 ** 31 - 1, "i32"));
  return kb.build();
}

/**
 * One workgroup of 64 per row (grid N): workgroup memory, barriers in a uniform loop, a private
 * array, a loop with break and an early return. out[row*2] = row sum; out[row*2 + 1] = 0+1+2 = 3
 * (private values k + lane summed over k < 3, read by lane 0).
 */
export function workgroupKernel(): Kernel {
  const kb = new KernelBuilder("rows", [64, 1, 1]);
  const x = kb.buffer("x", "f32", "read");
  const out = kb.buffer("out", "f32", "read_write");
  const sh = kb.array("sh", "f32", 64, "workgroup");
  const pr = kb.array("pr", "f32", 4, "private");
  kb.setGrid([N, 1, 1]);
  const row = kb.let("row", builtin("group_id", 0));
  const lane = kb.let("lane", builtin("local_id", 0));
  kb.store(sh, lane, kb.load(x, add(mul(row, 64), lane)));
  kb.barrier();
  // Tree reduction with a fixed stride sequence (uniform loop: barriers are allowed).
  const stride = kb.var("stride", i32(32));
  kb.for("r", 0, 6, () => {
    kb.if(lt(lane, stride), () => kb.store(sh, lane, add(kb.load(sh, lane), kb.load(sh, add(lane, stride)))));
    kb.barrier();
    kb.set(stride, binary("div", stride, i32(2)));
  });
  const acc = kb.var("acc", lit(0, "f32"));
  kb.for("k", 0, 4, (k) => kb.store(pr, k, cast(add(k, lane), "f32")));
  kb.for("k", 0, 4, (k) => {
    kb.if(ge(k, 3), () => kb.break());
    kb.set(acc, add(acc, kb.load(pr, k)));
  });
  kb.if(ne(lane, 0), () => kb.return());
  kb.store(out, mul(row, 2), kb.load(sh, i32(0)));
  kb.store(out, add(mul(row, 2), 1), acc);
  return kb.build();
}

/** Subgroup collectives: out[lane] = [add(lane), max(lane), min(lane), shuffle_xor(lane, 1), size]. */
export function subgroupKernel(): Kernel {
  const kb = new KernelBuilder("subgroup_ops", [8, 1, 1]);
  kb.use("subgroups");
  const out = kb.buffer("out", "i32", "read_write");
  const lane = kb.let("lane", builtin("subgroup_lane"));
  const vals = [
    subgroup("add", lane),
    subgroup("max", lane),
    subgroup("min", lane),
    subgroup("shuffle_xor", lane, i32(1)),
    builtin("subgroup_size"),
    builtin("local_id", 0),
  ];
  const l = builtin("local_id", 0);
  vals.forEach((v, j) => kb.store(out, add(mul(l, vals.length), j), v));
  return kb.build();
}
