/**
 * The one table of call names the language accepts besides IR op names: lowercase aliases for IR
 * ops. Any registered IR op name (`MatMul`, `tokens.prune`) is also callable as is.
 */
export const OP_ALIASES: Readonly<Record<string, string>> = {
  add: "Add",
  sub: "Sub",
  mul: "Mul",
  div: "Div",
  pow: "Pow",
  sqrt: "Sqrt",
  exp: "Exp",
  relu: "Relu",
  gelu: "Gelu",
  matmul: "MatMul",
  gemm: "Gemm",
  softmax: "Softmax",
  layernorm: "LayerNormalization",
  rmsnorm: "RMSNorm",
  transpose: "Transpose",
  reshape: "Reshape",
  concat: "Concat",
  split: "Split",
  gather: "Gather",
  flatten: "Flatten",
  unsqueeze: "Unsqueeze",
  squeeze: "Squeeze",
  expand: "Expand",
  cast: "Cast",
  where: "Where",
  reduce_sum: "ReduceSum",
  reduce_mean: "ReduceMean",
  reduce_max: "ReduceMax",
  attention: "attention",
  prune: "tokens.prune",
  merge: "tokens.merge",
};

/** Parameter initializers (`param w: f32[4, 4] = normal(std: 0.02)`). */
export const INITIALIZERS = ["normal", "zeros", "ones", "file"] as const;
