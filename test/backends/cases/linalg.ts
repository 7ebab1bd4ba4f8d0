import { sym } from "../../../compiler/ir/sym.js";
import { tensorType } from "../../../compiler/ir/types.js";
import { type OpCase, randTensor } from "./types.js";

const N = sym("N");
const T = sym("T");

/** MatMul, Gemm and Conv: edges of the 32x32 matmul tiles, broadcasting, 1-D operands, symbolic M. */
export const cases: OpCase[] = [
  {
    name: "MatMul/2d",
    op: "MatMul",
    inputs: [randTensor("f32", [5, 7], 1), randTensor("f32", [7, 6], 2)],
  },
  {
    name: "MatMul/tile-edges",
    op: "MatMul",
    inputs: [randTensor("f32", [37, 9], 3), randTensor("f32", [9, 35], 4)],
  },
  {
    name: "MatMul/batch-broadcast",
    op: "MatMul",
    inputs: [randTensor("f32", [2, 1, 4, 5], 5), randTensor("f32", [3, 5, 6], 6)],
  },
  {
    // Past one 8x64 tile of the row variants in both directions, odd K.
    name: "MatMul/wide-tile-edges",
    op: "MatMul",
    inputs: [randTensor("f32", [2, 9, 13], 62), randTensor("f32", [13, 70], 63)],
  },
  {
    // A read through a folded Transpose (fold-matmul-transpose): rows in permuted order.
    name: "MatMul/perm_a-seq-first",
    op: "MatMul",
    attrs: { perm_a: [1, 0, 2] },
    inputs: [randTensor("f32", [11, 3, 9], 64), randTensor("f32", [9, 70], 65)],
  },
  {
    name: "MatMul/perm_a-rank4-symbolic",
    op: "MatMul",
    attrs: { perm_a: [2, 0, 1, 3] },
    inputs: [randTensor("f32", [2, 3, 5, 4], 66), randTensor("f32", [4, 6], 67)],
    types: [tensorType("f32", [2, 3, N, 4]), tensorType("f32", [4, 6])],
    env: { N: 5 },
  },
  {
    name: "MatMul/1d-a",
    op: "MatMul",
    inputs: [randTensor("f32", [5], 7), randTensor("f32", [2, 5, 3], 8)],
  },
  {
    name: "MatMul/1d-b",
    op: "MatMul",
    inputs: [randTensor("f32", [2, 4, 5], 9), randTensor("f32", [5], 10)],
  },
  {
    name: "MatMul/1d-both",
    op: "MatMul",
    inputs: [randTensor("f32", [5], 11), randTensor("f32", [5], 12)],
  },
  {
    // Batches of one row against a weight (torch's sequence-first in_proj): rows fold into one GEMM.
    name: "MatMul/batched-rows-x-weight",
    op: "MatMul",
    inputs: [randTensor("f32", [3, 2, 1, 7], 60), randTensor("f32", [7, 37], 61)],
  },
  {
    name: "MatMul/i32",
    op: "MatMul",
    inputs: [randTensor("i32", [3, 4], 13, -5, 5), randTensor("i32", [4, 6], 14, -5, 5)],
  },
  {
    name: "MatMul/symbolic-tokens",
    op: "MatMul",
    inputs: [randTensor("f32", [2, 11, 8], 15), randTensor("f32", [8, 6], 16)],
    types: [tensorType("f32", [2, N, 8]), tensorType("f32", [8, 6])],
    env: { N: 11 },
  },
  {
    name: "Gemm/plain",
    op: "Gemm",
    inputs: [randTensor("f32", [6, 5], 20), randTensor("f32", [5, 9], 21)],
  },
  {
    name: "Gemm/transA-transB-alpha-beta-C-row",
    op: "Gemm",
    attrs: { transA: 1, transB: 1, alpha: 0.5, beta: -2 },
    inputs: [randTensor("f32", [5, 6], 22), randTensor("f32", [9, 5], 23), randTensor("f32", [9], 24)],
  },
  {
    name: "Gemm/C-column",
    op: "Gemm",
    attrs: { beta: 0.25 },
    inputs: [randTensor("f32", [6, 5], 25), randTensor("f32", [5, 9], 26), randTensor("f32", [6, 1], 27)],
  },
  {
    name: "Gemm/C-scalar-transB",
    op: "Gemm",
    attrs: { transB: 1 },
    inputs: [randTensor("f32", [33, 4], 28), randTensor("f32", [34, 4], 29), randTensor("f32", [], 30)],
  },
  {
    name: "Gemm/symbolic-M-full-C",
    op: "Gemm",
    attrs: { alpha: 2 },
    inputs: [randTensor("f32", [7, 5], 31), randTensor("f32", [5, 3], 32), randTensor("f32", [7, 3], 33)],
    types: [tensorType("f32", [N, 5]), tensorType("f32", [5, 3]), tensorType("f32", [N, 3])],
    env: { N: 7 },
  },
  {
    name: "Conv/2d-pads-strides-bias",
    op: "Conv",
    attrs: { pads: [1, 0, 2, 1], strides: [2, 1] },
    inputs: [
      randTensor("f32", [2, 3, 7, 6], 40),
      randTensor("f32", [4, 3, 3, 2], 41),
      randTensor("f32", [4], 42),
    ],
  },
  {
    name: "Conv/2d-groups-dilations",
    op: "Conv",
    attrs: { group: 2, dilations: [2, 1], pads: [2, 1, 2, 1] },
    inputs: [randTensor("f32", [1, 4, 6, 5], 43), randTensor("f32", [6, 2, 3, 3], 44)],
  },
  {
    name: "Conv/depthwise-same-upper",
    op: "Conv",
    attrs: { group: 3, auto_pad: "SAME_UPPER", strides: [2, 2] },
    inputs: [
      randTensor("f32", [1, 3, 6, 7], 45),
      randTensor("f32", [3, 1, 2, 3], 46),
      randTensor("f32", [3], 47),
    ],
  },
  {
    name: "Conv/same-lower",
    op: "Conv",
    attrs: { auto_pad: "SAME_LOWER" },
    inputs: [randTensor("f32", [1, 2, 5, 5], 48), randTensor("f32", [2, 2, 2, 2], 49)],
  },
  {
    name: "Conv/1d-symbolic-length-same",
    op: "Conv",
    attrs: { auto_pad: "SAME_UPPER", strides: [2] },
    inputs: [randTensor("f32", [2, 3, 9], 50), randTensor("f32", [4, 3, 4], 51)],
    types: [tensorType("f32", [2, 3, T]), tensorType("f32", [4, 3, 4])],
    env: { T: 9 },
  },
  // Ungrouped, unpadded: the GEMM path (11 output channels: ragged row tiles).
  {
    name: "Conv/gemm-patchify-bias",
    op: "Conv",
    attrs: { strides: [4, 4] },
    inputs: [
      randTensor("f32", [2, 3, 8, 13], 55),
      randTensor("f32", [11, 3, 4, 4], 56),
      randTensor("f32", [11], 57),
    ],
  },
  {
    name: "Conv/gemm-valid-strided-dilated",
    op: "Conv",
    attrs: { auto_pad: "VALID", strides: [2, 1], dilations: [2, 1] },
    inputs: [randTensor("f32", [1, 2, 9, 7], 58), randTensor("f32", [3, 2, 2, 3], 59)],
  },
  {
    name: "Conv/gemm-1d-symbolic-batch",
    op: "Conv",
    attrs: { strides: [2] },
    inputs: [randTensor("f32", [3, 3, 10], 60), randTensor("f32", [4, 3, 3], 61), randTensor("f32", [4], 62)],
    types: [tensorType("f32", [T, 3, 10]), tensorType("f32", [4, 3, 3]), tensorType("f32", [4])],
    env: { T: 3 },
  },
  {
    name: "Conv/1d-valid-dilated",
    op: "Conv",
    attrs: { dilations: [2], pads: [1, 0] },
    inputs: [randTensor("f32", [1, 2, 10], 52), randTensor("f32", [3, 2, 3], 53), randTensor("f32", [3], 54)],
  },
];
