import { sym } from "../../../compiler/ir/sym.js";
import { makeTensor } from "../../../compiler/ir/tensor.js";
import { tensorType } from "../../../compiler/ir/types.js";
import { type OpCase, randTensor } from "./types.js";

const N = sym("N");
const r = (shape: number[], seed: number) => randTensor("f32", shape, seed);

/** Mask [1, 1, 3, 6] whose row 1 allows no key (its output must be 0, not NaN). */
const rowMasked = makeTensor("bool", [1, 1, 3, 6], [1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1]);

/** Mask [1, 1, 3, 6] whose row 0 (the CLS query) allows no key: "cls" importance is 0. */
const row0Masked = makeTensor("bool", [1, 1, 3, 6], [0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1]);

/** Bias [3, 6] with -inf on every key of row 2 and on some of row 0. */
const infBias = makeTensor(
  "f32",
  [3, 6],
  [-Infinity, 0.5, 0, -Infinity, 1, 0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, ...new Array<number>(6).fill(-Infinity)],
);

/** Fused attention: GQA, causal with Nk > Nq, masks/biases with broadcasting, chunks of > 64 keys, importance. */
export const cases: OpCase[] = [
  {
    name: "attention/basic",
    op: "attention",
    inputs: [r([1, 2, 5, 4], 1), r([1, 2, 5, 4], 2), r([1, 2, 5, 4], 3)],
    tol: 1e-4,
  },
  {
    name: "attention/gqa-causal-scale",
    op: "attention",
    attrs: { causal: true, scale: 0.7 },
    inputs: [r([2, 4, 3, 8], 4), r([2, 2, 6, 8], 5), r([2, 2, 6, 5], 6)],
    tol: 1e-4,
  },
  {
    name: "attention/mask-row-empty-bias-broadcast",
    op: "attention",
    inputs: [r([1, 2, 3, 4], 7), r([1, 2, 6, 4], 8), r([1, 2, 6, 3], 9), rowMasked, r([1, 2, 1, 6], 10)],
    tol: 1e-4,
  },
  {
    name: "attention/bias-neg-inf-rows",
    op: "attention",
    inputs: [r([1, 1, 3, 4], 11), r([1, 1, 6, 4], 12), r([1, 1, 6, 4], 13), null, infBias],
    tol: 1e-4,
  },
  {
    // Past ROWS_MAX_PRIVATE_KEYS (512) static keys: the rows variant's one-pass online softmax.
    name: "attention/keys-past-private-limit-causal",
    op: "attention",
    attrs: { causal: true },
    inputs: [r([1, 1, 3, 2], 40), r([1, 1, 520, 2], 41), r([1, 1, 520, 3], 42)],
    tol: 1e-4,
  },
  {
    name: "attention/many-keys-wide-values",
    op: "attention",
    inputs: [r([1, 2, 2, 4], 14), r([1, 1, 70, 4], 15), r([1, 1, 70, 70], 16)],
    tol: 1e-4,
  },
  {
    // More query rows than one workgroup of the register variant covers (8 lanes x 4 rows).
    name: "attention/many-queries-causal-colsum",
    op: "attention",
    attrs: { scores: "colsum", causal: true },
    numOutputs: 2,
    inputs: [r([1, 2, 130, 2], 26), r([1, 1, 7, 2], 27), r([1, 1, 7, 3], 28)],
    tol: 1e-4,
  },
  {
    name: "attention/cls-importance-causal",
    op: "attention",
    attrs: { scores: "cls", causal: true },
    numOutputs: 2,
    inputs: [r([2, 3, 4, 4], 17), r([2, 3, 5, 4], 18), r([2, 3, 5, 4], 19)],
    tol: 1e-4,
  },
  {
    name: "attention/colsum-importance-mask",
    op: "attention",
    attrs: { scores: "colsum" },
    numOutputs: 2,
    inputs: [r([1, 1, 3, 4], 20), r([1, 1, 6, 4], 21), r([1, 1, 6, 2], 22), rowMasked],
    tol: 1e-4,
  },
  {
    name: "attention/graph-importance",
    op: "attention",
    attrs: { scores: "graph", graph_iters: 3 },
    numOutputs: 2,
    inputs: [r([2, 2, 5, 4], 23), r([2, 1, 5, 4], 24), r([2, 1, 5, 4], 25)],
    tol: 1e-4,
  },
  {
    name: "attention/graph-one-iter-causal",
    op: "attention",
    attrs: { scores: "graph", graph_iters: 1, causal: true },
    numOutputs: 2,
    inputs: [r([1, 2, 4, 4], 26), r([1, 2, 4, 4], 27), r([1, 2, 4, 4], 28)],
    tol: 1e-4,
  },
  {
    name: "attention/symbolic-tokens-colsum",
    op: "attention",
    attrs: { scores: "colsum" },
    numOutputs: 2,
    inputs: [r([1, 2, 7, 4], 29), r([1, 2, 7, 4], 30), r([1, 2, 7, 4], 31)],
    types: [1, 2, 3].map(() => tensorType("f32", [1, 2, N, 4])),
    env: { N: 7 },
    tol: 1e-4,
  },
  {
    name: "attention/cls-mask-row0-partly-empty-bias",
    op: "attention",
    attrs: { scores: "cls" },
    numOutputs: 2,
    inputs: [
      r([2, 2, 3, 4], 32),
      r([2, 2, 6, 4], 33),
      r([2, 2, 6, 3], 34),
      makeTensor("bool", [2, 1, 3, 6], [...row0Masked.data, ...rowMasked.data]),
      r([1, 2, 1, 6], 35),
    ],
    tol: 1e-4,
  },
  {
    // Past the private-array limit: the rows variant keeps row 0's raw scores in the cls scratch.
    name: "attention/cls-keys-past-private-limit",
    op: "attention",
    attrs: { scores: "cls" },
    numOutputs: 2,
    inputs: [r([1, 2, 3, 2], 36), r([1, 1, 520, 2], 37), r([1, 1, 520, 3], 38)],
    tol: 1e-4,
  },
  {
    name: "attention/symbolic-tokens-cls-causal",
    op: "attention",
    attrs: { scores: "cls", causal: true },
    numOutputs: 2,
    inputs: [r([1, 2, 7, 4], 39), r([1, 2, 7, 4], 40), r([1, 2, 7, 4], 41)],
    types: [1, 2, 3].map(() => tensorType("f32", [1, 2, N, 4])),
    env: { N: 7 },
    tol: 1e-4,
  },
];
