import { sym } from "../../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../../compiler/ir/tensor.js";
import { tensorType } from "../../../compiler/ir/types.js";
import { type OpCase, randTensor } from "./types.js";

/**
 * ReduceSum/Mean/Max: contiguous rows (workgroup per row, shorter and longer than a workgroup),
 * strided and non-adjacent axes, keepdims both ways, axes as an input, empty reductions, ints.
 */

const f32 = (shape: number[], seed: number): Tensor => randTensor("f32", shape, seed, -2, 2);
const [B, N] = [sym("B"), sym("N")];
const axesIn = (axes: number[]): Tensor => makeTensor("i64", [axes.length], axes);

const OPS = ["ReduceSum", "ReduceMean", "ReduceMax"] as const;

/** The same shape and axes for all three ops. */
function all(name: string, c: Omit<OpCase, "name" | "op">): OpCase[] {
  return OPS.map((op) => ({ ...c, name: `${op}/${name}`, op }));
}

export const cases: OpCase[] = [
  ...all("last-axis-short", { attrs: { axes: [1] }, inputs: [f32([3, 40], 1)] }),
  ...all("last-axis-longer-than-workgroup", {
    attrs: { axes: [-1], keepdims: 0 },
    inputs: [f32([3, 300], 2)],
  }),
  ...all("tiny-rows-serial", { attrs: { axes: [1] }, inputs: [f32([70, 5], 3)] }),
  ...all("leading-axis-narrow", { attrs: { axes: [0] }, inputs: [f32([50, 3], 4)] }),
  ...all("middle-axis-strided", { attrs: { axes: [1], keepdims: 0 }, inputs: [f32([2, 40, 16], 5)] }),
  ...all("non-adjacent-axes", { attrs: { axes: [0, 2], keepdims: 0 }, inputs: [f32([6, 5, 7], 6)] }),
  ...all("all-axes", { inputs: [f32([4, 9], 7)] }),
  ...all("size-1-axis", { attrs: { axes: [1] }, inputs: [f32([3, 1, 5], 8)] }),
  ...all("scalar", { inputs: [f32([], 9)] }),
  ...all("empty-axis", { attrs: { axes: [1] }, inputs: [f32([3, 0], 10)] }),
  ...all("axes-input", { attrs: { keepdims: 0 }, inputs: [f32([2, 5, 7], 11), axesIn([-1])], consts: [1] }),
  ...all("axes-input-keepdims", { inputs: [f32([4, 6, 3], 12), axesIn([0, 1])], consts: [1] }),
  ...all("i32", { attrs: { axes: [1] }, inputs: [randTensor("i32", [4, 50], 13, -100, 100)] }),
  ...all("i64-empty", { attrs: { axes: [0] }, inputs: [makeTensor("i64", [0, 2], [])] }),
  ...all("symbolic-tokens", {
    attrs: { axes: [1], keepdims: 0 },
    inputs: [f32([2, 9, 8], 14)],
    types: [tensorType("f32", [B, N, 8])],
    env: { B: 2, N: 9 },
  }),
  ...all("symbolic-rows", {
    attrs: { axes: [-1] },
    inputs: [f32([2, 3, 50], 15)],
    types: [tensorType("f32", [B, N, 50])],
    env: { B: 2, N: 3 },
  }),
  ...all("symbolic-row-length", {
    attrs: { axes: [-1] },
    inputs: [f32([3, 45], 16)],
    types: [tensorType("f32", [3, N])],
    env: { N: 45 },
  }),
  {
    name: "ReduceMax/nan-propagates",
    op: "ReduceMax",
    attrs: { axes: [1] },
    inputs: [makeTensor("f32", [2, 3], [1, NaN, 2, -1, -2, -3])],
  },
  {
    name: "ReduceMean/i32-truncates",
    op: "ReduceMean",
    attrs: { axes: [0] },
    inputs: [makeTensor("i32", [2, 2], [-3, 3, 0, 4])],
  },
  { name: "ReduceSum/noop", op: "ReduceSum", attrs: { noop_with_empty_axes: 1 }, inputs: [f32([2, 3], 17)] },
  {
    name: "ReduceMean/f16",
    op: "ReduceMean",
    attrs: { axes: [-1] },
    inputs: [randTensor("f16", [3, 64], 18)],
    tol: 1e-3,
  },
];
