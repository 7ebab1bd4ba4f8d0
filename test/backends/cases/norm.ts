import { sym } from "../../../compiler/ir/sym.js";
import { makeTensor, type Tensor } from "../../../compiler/ir/tensor.js";
import { tensorType } from "../../../compiler/ir/types.js";
import { type OpCase, randTensor } from "./types.js";

/** Softmax (every axis), LayerNormalization (all outputs, broadcast affine params) and RMSNorm. */

const f32 = (shape: number[], seed: number, lo = -3, hi = 3): Tensor =>
  randTensor("f32", shape, seed, lo, hi);
const [B, N] = [sym("B"), sym("N")];

const softmax: OpCase[] = [
  { name: "Softmax/last-axis", op: "Softmax", inputs: [f32([4, 100], 1)] },
  { name: "Softmax/row-longer-than-workgroup", op: "Softmax", inputs: [f32([2, 600], 2, -20, 20)] },
  { name: "Softmax/short-rows", op: "Softmax", inputs: [f32([5, 7], 3)] },
  { name: "Softmax/axis0", op: "Softmax", attrs: { axis: 0 }, inputs: [f32([40, 6], 4)] },
  { name: "Softmax/middle-axis", op: "Softmax", attrs: { axis: 1 }, inputs: [f32([2, 50, 3], 5)] },
  { name: "Softmax/size-1-axis", op: "Softmax", attrs: { axis: 1 }, inputs: [f32([3, 1, 2], 6)] },
  {
    name: "Softmax/-inf",
    op: "Softmax",
    inputs: [makeTensor("f32", [2, 3], [0, -Infinity, 1, -Infinity, 2, -Infinity])],
  },
  {
    name: "Softmax/symbolic-scores",
    op: "Softmax",
    inputs: [f32([2, 3, 40], 7)],
    types: [tensorType("f32", [B, 3, N])],
    env: { B: 2, N: 40 },
  },
  {
    name: "Softmax/symbolic-axis1",
    op: "Softmax",
    attrs: { axis: 1 },
    inputs: [f32([2, 9, 4], 8)],
    types: [tensorType("f32", [B, N, 4])],
    env: { B: 2, N: 9 },
  },
  { name: "Softmax/f16", op: "Softmax", inputs: [randTensor("f16", [3, 50], 9)], tol: 1e-3 },
];

const layerNorm: OpCase[] = [
  {
    name: "LayerNormalization/affine",
    op: "LayerNormalization",
    inputs: [f32([3, 64], 10), f32([64], 11), f32([64], 12)],
  },
  {
    name: "LayerNormalization/all-outputs",
    op: "LayerNormalization",
    attrs: { epsilon: 1e-3 },
    inputs: [f32([4, 300], 13, 1, 5), f32([300], 14), f32([300], 15)],
    numOutputs: 3,
  },
  {
    name: "LayerNormalization/mean-output-only",
    op: "LayerNormalization",
    inputs: [f32([2, 20], 16), f32([20], 17)],
    numOutputs: 2,
  },
  {
    name: "LayerNormalization/axis1-2d-params",
    op: "LayerNormalization",
    attrs: { axis: 1 },
    inputs: [f32([2, 5, 8], 18), f32([5, 1], 19), f32([8], 20)],
    numOutputs: 3,
  },
  {
    name: "LayerNormalization/params-over-rows",
    op: "LayerNormalization",
    inputs: [f32([3, 40], 21), f32([3, 40], 22), f32([3, 1], 23)],
  },
  { name: "LayerNormalization/no-params", op: "LayerNormalization", inputs: [f32([6, 3], 24)] },
  {
    name: "LayerNormalization/symbolic",
    op: "LayerNormalization",
    inputs: [f32([2, 5, 48], 25), f32([48], 26), f32([48], 27)],
    types: [tensorType("f32", [B, N, 48]), tensorType("f32", [48]), tensorType("f32", [48])],
    env: { B: 2, N: 5 },
    numOutputs: 3,
  },
  {
    name: "LayerNormalization/symbolic-row-length",
    op: "LayerNormalization",
    attrs: { axis: 0 },
    inputs: [f32([70], 28)],
    types: [tensorType("f32", [N])],
    env: { N: 70 },
  },
];

const rmsNorm: OpCase[] = [
  { name: "RMSNorm/scale", op: "RMSNorm", inputs: [f32([3, 64], 29), f32([64], 30)] },
  { name: "RMSNorm/long-rows", op: "RMSNorm", inputs: [f32([2, 1000], 31)] },
  {
    name: "RMSNorm/short-rows",
    op: "RMSNorm",
    attrs: { epsilon: 0.5 },
    inputs: [f32([9, 4], 32), f32([4], 33)],
  },
  {
    name: "RMSNorm/symbolic",
    op: "RMSNorm",
    inputs: [f32([7, 40], 34), f32([40], 35)],
    types: [tensorType("f32", [N, 40]), tensorType("f32", [40])],
    env: { N: 7 },
  },
];

export const cases: OpCase[] = [...softmax, ...layerNorm, ...rmsNorm];
