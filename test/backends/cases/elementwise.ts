import { DTYPES, type DType, isFloat } from "../../../compiler/ir/dtype.js";
import { sym } from "../../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../../compiler/ir/tensor.js";
import { tensorType } from "../../../compiler/ir/types.js";
import { type OpCase, randTensor } from "./types.js";

/** Elementwise ops: every pointwise rule, broadcasting both ways, integer and bool forms, every Cast pair. */

const f32 = (shape: number[], seed: number, lo = -3, hi = 3): Tensor =>
  randTensor("f32", shape, seed, lo, hi);
const t = (dtype: DType, shape: number[], values: number[]): Tensor => makeTensor(dtype, shape, values);

const unary: OpCase[] = [
  { name: "Sqrt/f32", op: "Sqrt", inputs: [f32([3, 5], 1, 0, 9)] },
  { name: "Exp/f32", op: "Exp", inputs: [f32([3, 5], 2)] },
  { name: "Log/f32", op: "Log", inputs: [f32([3, 5], 3, 0.01, 20)] },
  { name: "Erf/f32", op: "Erf", inputs: [f32([4, 4], 4)] },
  { name: "Tanh/f32", op: "Tanh", inputs: [t("f32", [6], [-20, -1, -0.1, 0, 0.5, 20])] },
  { name: "Sigmoid/f32", op: "Sigmoid", inputs: [t("f32", [6], [-90, -3, 0, 0.25, 3, 90])] },
  { name: "Relu/f32-nan", op: "Relu", inputs: [t("f32", [5], [-1, 0, 2.5, NaN, -0.5])] },
  { name: "Relu/i32", op: "Relu", inputs: [t("i32", [4], [-3, 0, 7, -1])] },
  { name: "Relu/bool", op: "Relu", inputs: [t("bool", [3], [1, 0, 1])] },
  { name: "Neg/f32", op: "Neg", inputs: [f32([2, 3], 5)] },
  { name: "Neg/i64", op: "Neg", inputs: [t("i64", [3], [5, -2, 0])] },
  { name: "Neg/bool", op: "Neg", inputs: [t("bool", [2], [1, 0])] },
  { name: "Reciprocal/f32", op: "Reciprocal", inputs: [t("f32", [4], [2, -4, 0.5, 0])] },
  { name: "Abs/f32", op: "Abs", inputs: [f32([7], 6)] },
  { name: "Abs/i32", op: "Abs", inputs: [t("i32", [3], [-9, 0, 4])] },
  { name: "Abs/i8-wraps", op: "Abs", inputs: [t("i8", [3], [-128, -5, 7])] },
  { name: "Not/bool", op: "Not", inputs: [t("bool", [2, 2], [1, 0, 0, 1])] },
  { name: "Gelu/none", op: "Gelu", inputs: [f32([3, 4], 7)] },
  { name: "Gelu/tanh", op: "Gelu", attrs: { approximate: "tanh" }, inputs: [f32([3, 4], 8)] },
  { name: "Exp/f16", op: "Exp", inputs: [randTensor("f16", [5], 9)], tol: 2e-3 },
  {
    name: "Tanh/symbolic",
    op: "Tanh",
    inputs: [f32([3, 70], 10)],
    types: [tensorType("f32", [sym("B"), sym("N")])],
    env: { B: 3, N: 70 },
  },
];

const binary: OpCase[] = [
  { name: "Add/same", op: "Add", inputs: [f32([2, 3], 11), f32([2, 3], 12)] },
  { name: "Add/broadcast-both", op: "Add", inputs: [f32([4, 1, 3], 13), f32([2, 1], 14)] },
  { name: "Add/scalar-left", op: "Add", inputs: [f32([], 15), f32([3, 2], 16)] },
  { name: "Add/many-groups", op: "Add", inputs: [f32([9, 150], 17), f32([150], 18)] },
  {
    name: "Add/symbolic-broadcast",
    op: "Add",
    inputs: [f32([2, 5, 4], 19), f32([5, 1], 20)],
    types: [tensorType("f32", [sym("B"), sym("N"), 4]), tensorType("f32", [sym("N"), 1])],
    env: { B: 2, N: 5 },
  },
  { name: "Add/u8-wraps", op: "Add", inputs: [t("u8", [3], [200, 255, 3]), t("u8", [3], [100, 1, 4])] },
  { name: "Sub/i32", op: "Sub", inputs: [t("i32", [3], [5, -2, 0]), t("i32", [1], [7])] },
  { name: "Mul/i64", op: "Mul", inputs: [t("i64", [2, 2], [3, -4, 5, 6]), t("i64", [2], [-2, 3])] },
  { name: "Mul/f32", op: "Mul", inputs: [f32([3, 1], 21), f32([1, 4], 22)] },
  { name: "Div/f32", op: "Div", inputs: [f32([5], 23), t("f32", [5], [2, -0.5, 0, 3, -7])] },
  {
    name: "Div/i32-truncates",
    op: "Div",
    inputs: [t("i32", [6], [7, -7, 7, -7, 5, 0]), t("i32", [6], [2, 2, -2, -2, 0, 3])],
  },
  { name: "Div/i64-broadcast", op: "Div", inputs: [t("i64", [2, 2], [9, -9, 4, 1]), t("i64", [2], [4, 0])] },
  {
    name: "Pow/f32-signs",
    op: "Pow",
    inputs: [t("f32", [6], [-2, -2, 2, 0, -8, 1.5]), t("f32", [6], [2, 3, 0.5, 0, 1 / 3, -2])],
  },
  { name: "Pow/f32-i32-exponent", op: "Pow", inputs: [f32([2, 3], 24, 0.1, 3), t("i32", [3], [0, 1, 3])] },
  { name: "Pow/i32", op: "Pow", inputs: [t("i32", [4], [3, -2, 5, 2]), t("i32", [4], [2, 3, 0, -1])] },
  {
    name: "Equal/f32",
    op: "Equal",
    inputs: [t("f32", [4], [1, 2, NaN, -0]), t("f32", [4], [1, 3, NaN, 0])],
  },
  { name: "Equal/bool", op: "Equal", inputs: [t("bool", [2, 2], [1, 0, 1, 0]), t("bool", [2], [1, 1])] },
  { name: "Less/i32", op: "Less", inputs: [t("i32", [3, 1], [1, 5, -2]), t("i32", [3], [0, 2, 5])] },
  { name: "Less/bool", op: "Less", inputs: [t("bool", [2, 1], [0, 1]), t("bool", [2], [0, 1])] },
  { name: "Greater/f32", op: "Greater", inputs: [f32([3, 4], 25), f32([4], 26)] },
  {
    name: "Where/broadcast-3",
    op: "Where",
    inputs: [randTensor("bool", [2, 1, 3], 27), f32([4, 1], 28), f32([3], 29)],
  },
  {
    name: "Where/i64",
    op: "Where",
    inputs: [t("bool", [3], [1, 0, 1]), t("i64", [3], [1, 2, 3]), t("i64", [1], [-5])],
  },
];

/** Values each source dtype can hold, with the awkward ones (NaN, inf, out of 8-bit range). */
function castSource(d: DType): Tensor {
  if (d === "bool") return t(d, [4], [0, 1, 1, 0]);
  if (isFloat(d)) return t(d, [8], [1.5, -2.7, 0, NaN, Infinity, -Infinity, 300.7, -0.4]);
  if (d === "u8") return t(d, [4], [0, 7, 200, 255]);
  if (d === "i8") return t(d, [4], [0, -7, 100, -128]);
  return t(d, [5], [0, -7, 300, -129, 70000]);
}

const casts: OpCase[] = DTYPES.flatMap((from) =>
  DTYPES.map((to): OpCase => ({
    name: `Cast/${from}-${to}`,
    op: "Cast",
    attrs: { to },
    inputs: [castSource(from)],
    // f16 without shader-f16 is computed and stored as f32 (no rounding to half).
    ...(to === "f16" ? { tol: 1e-3 } : {}),
  })),
);

export const cases: OpCase[] = [...unary, ...binary, ...casts];
