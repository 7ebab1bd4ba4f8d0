/**
 * Tiny ONNX models for the benchmarks, written with the onnx-proto API: one MatMul of an activation
 * input by a weight initializer, the shape of a linear layer.
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function valueInfo(name: string, dims: readonly number[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
  };
}

/**
 * `y[m, n] = x[m, k] @ w[k, n]` with `x` a graph input and `w` an f32 initializer (raw_data), opset 17.
 * Returns the encoded model.
 */
export function matmulModel(m: number, k: number, n: number, w: Float32Array): Uint8Array {
  if (w.length !== k * n) throw new Error(`matmulModel: weight has ${w.length} values, expected ${k}x${n}`);
  const graph: onnxProto.onnx.IGraphProto = {
    name: `matmul_${m}x${k}x${n}`,
    input: [valueInfo("x", [m, k])],
    output: [valueInfo("y", [m, n])],
    initializer: [
      {
        name: "w",
        dims: [k, n],
        dataType: FLOAT,
        rawData: new Uint8Array(w.buffer, w.byteOffset, w.byteLength),
      },
    ],
    node: [{ opType: "MatMul", name: "matmul", input: ["x", "w"], output: ["y"] }],
  };
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: 8,
      producerName: "tokr-bench",
      opsetImport: [{ domain: "", version: 17 }],
      graph,
    }),
  ).finish();
}
