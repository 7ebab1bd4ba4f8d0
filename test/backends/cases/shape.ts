import type { DType } from "../../../compiler/ir/dtype.js";
import { sym } from "../../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../../compiler/ir/tensor.js";
import { tensorType } from "../../../compiler/ir/types.js";
import { type OpCase, randTensor } from "./types.js";

/** Data-movement ops with kernels (views have none): static, symbolic and edge shapes. */

const f32 = (shape: number[], seed: number): Tensor => randTensor("f32", shape, seed, -5, 5);
const ints = (dtype: DType, values: number[], shape = [values.length]): Tensor =>
  makeTensor(dtype, shape, values);
const i64 = (values: number[], shape?: number[]): Tensor => ints("i64", values, shape);
const [B, N] = [sym("B"), sym("N")];
/** INT32_MAX: "to the end" in exported slices. */
const END = 2 ** 31 - 1;

const expand: OpCase[] = [
  { name: "Expand/both-ways", op: "Expand", inputs: [f32([3, 1], 1), i64([2, 1, 4])], consts: [1] },
  { name: "Expand/bool", op: "Expand", inputs: [randTensor("bool", [1, 3], 2), i64([2, 3])], consts: [1] },
  {
    name: "Expand/symbolic",
    op: "Expand",
    inputs: [f32([5, 1], 3), i64([1, 4])],
    types: [tensorType("f32", [N, 1]), tensorType("i64", [2])],
    env: { N: 5 },
    consts: [1],
  },
];

const transpose: OpCase[] = [
  { name: "Transpose/perm", op: "Transpose", attrs: { perm: [2, 0, 1] }, inputs: [f32([2, 3, 4], 4)] },
  { name: "Transpose/default", op: "Transpose", inputs: [ints("i64", [1, 2, 3, 4, 5, 6], [2, 3])] },
  {
    name: "Transpose/symbolic",
    op: "Transpose",
    attrs: { perm: [0, 2, 1] },
    inputs: [f32([2, 7, 8], 5)],
    types: [tensorType("f32", [B, N, 8])],
    env: { B: 2, N: 7 },
  },
];

const concat: OpCase[] = [
  { name: "Concat/axis1", op: "Concat", attrs: { axis: 1 }, inputs: [f32([2, 1, 3], 6), f32([2, 4, 3], 7)] },
  { name: "Concat/negative-axis-i64", op: "Concat", attrs: { axis: -1 }, inputs: [i64([1, 2]), i64([3])] },
  {
    name: "Concat/empty-part",
    op: "Concat",
    attrs: { axis: 0 },
    inputs: [f32([2, 3], 8), f32([0, 3], 9), f32([1, 3], 10)],
  },
  {
    name: "Concat/nine-inputs",
    op: "Concat",
    attrs: { axis: 1 },
    inputs: Array.from({ length: 9 }, (_, k) => f32([2, 1 + (k % 3)], 11 + k)),
  },
  {
    name: "Concat/symbolic",
    op: "Concat",
    attrs: { axis: 1 },
    inputs: [f32([2, 1, 4], 20), f32([2, 6, 4], 21)],
    types: [tensorType("f32", [B, 1, 4]), tensorType("f32", [B, N, 4])],
    env: { B: 2, N: 6 },
  },
];

const split: OpCase[] = [
  { name: "Split/uneven", op: "Split", attrs: { axis: 1 }, inputs: [f32([2, 7], 22)], numOutputs: 3 },
  {
    name: "Split/sizes-with-empty",
    op: "Split",
    inputs: [f32([5, 2], 23), i64([2, 0, 3])],
    consts: [1],
    numOutputs: 3,
  },
  {
    name: "Split/symbolic-axis",
    op: "Split",
    attrs: { axis: 1 },
    inputs: [f32([2, 5, 3], 24)],
    types: [tensorType("f32", [B, N, 3])],
    env: { B: 2, N: 5 },
    numOutputs: 2,
  },
];

const slice = (name: string, x: Tensor, args: number[][], extra: Partial<OpCase> = {}): OpCase => ({
  name: `Slice/${name}`,
  op: "Slice",
  inputs: [x, ...args.map((a) => i64(a))],
  consts: args.map((_, k) => k + 1),
  ...extra,
});

const slices: OpCase[] = [
  slice("basic", f32([3, 6], 25), [[1], [4], [1]]),
  slice("two-axes-default", f32([4, 5], 26), [
    [1, 0],
    [3, -1],
  ]),
  slice("negative-step", f32([3, 9], 27), [[-1], [-100], [-1], [-2]]),
  slice("reverse-clamped-start", f32([6], 28), [[100], [-100], [0], [-1]]),
  slice("out-of-range-empty", f32([2, 4], 29), [[10], [20], [1]]),
  slice("steps-both-axes", f32([5, 6, 2], 30), [
    [4, 1],
    [0, END],
    [0, 1],
    [-2, 3],
  ]),
  slice("symbolic-tokens", f32([2, 6, 4], 31), [[1], [END], [1]], {
    types: [tensorType("f32", [B, N, 4]), ...[0, 1, 2].map(() => tensorType("i64", [1]))],
    env: { B: 2, N: 6 },
  }),
];

const gather: OpCase[] = [
  { name: "Gather/axis0-negative", op: "Gather", inputs: [f32([4, 3], 32), i64([2, -1, 0])] },
  {
    name: "Gather/axis1-2d-indices",
    op: "Gather",
    attrs: { axis: 1 },
    inputs: [f32([2, 3, 4], 33), ints("i32", [0, 1, -1, 2], [2, 2])],
  },
  {
    name: "Gather/scalar-index",
    op: "Gather",
    attrs: { axis: -1 },
    inputs: [f32([3, 5], 34), i64([-2], [])],
  },
  {
    name: "Gather/symbolic",
    op: "Gather",
    inputs: [f32([5, 8], 35), i64([0, -1])],
    types: [tensorType("f32", [N, 8]), tensorType("i64", [2])],
    env: { N: 5 },
  },
];

const built: OpCase[] = [
  { name: "Shape/all", op: "Shape", inputs: [f32([2, 3, 4], 36)] },
  { name: "Shape/start-end", op: "Shape", attrs: { start: -2, end: 10 }, inputs: [f32([2, 3, 4], 37)] },
  { name: "Shape/empty-range", op: "Shape", attrs: { start: 2, end: 1 }, inputs: [f32([2, 3, 4], 38)] },
  {
    name: "Shape/symbolic",
    op: "Shape",
    inputs: [f32([2, 9, 4], 39)],
    types: [tensorType("f32", [B, N, 4])],
    env: { B: 2, N: 9 },
  },
  {
    name: "ConstantOfShape/f32",
    op: "ConstantOfShape",
    attrs: { value: 1.5 },
    inputs: [i64([2, 3])],
    consts: [0],
  },
  {
    name: "ConstantOfShape/i64",
    op: "ConstantOfShape",
    attrs: { value: -7, dtype: "i64" },
    inputs: [i64([70])],
    consts: [0],
  },
  {
    name: "ConstantOfShape/bool",
    op: "ConstantOfShape",
    attrs: { value: 2, dtype: "bool" },
    inputs: [i64([3])],
    consts: [0],
  },
  {
    name: "ConstantOfShape/u8-wraps",
    op: "ConstantOfShape",
    attrs: { value: 300, dtype: "u8" },
    inputs: [i64([2])],
    consts: [0],
  },
  // No float Range case: inference needs known bounds, and only integer values are tracked.
  { name: "Range/i64-down", op: "Range", inputs: [10, -3, -3].map((v) => i64([v], [])), consts: [0, 1, 2] },
  {
    name: "Range/i32-long",
    op: "Range",
    inputs: [0, 200, 1].map((v) => ints("i32", [v], [])),
    consts: [0, 1, 2],
  },
];

export const cases: OpCase[] = [...expand, ...transpose, ...concat, ...split, ...slices, ...gather, ...built];
