/** Small ONNX models built in tests with the protobuf API. */
import type { onnx as P } from "onnx-proto";
import { onnx } from "../../compiler/onnx/reader.js";

type Dim = number | string | null;
const T = onnx.TensorProto.DataType;
const A = onnx.AttributeProto.AttributeType;

/** A graph input/output: element type and dims (number = value, string = dim_param, null = neither). */
export function vi(name: string, elemType: number, dims: readonly Dim[]): P.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => (d === null ? {} : typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

export function floatTensor(name: string, dims: number[], values: number[]): P.ITensorProto {
  return { name, dims, dataType: T.FLOAT, floatData: values };
}

/** Little-endian raw_data of f32 values. */
export function rawFloatTensor(name: string, dims: number[], values: number[]): P.ITensorProto {
  return { name, dims, dataType: T.FLOAT, rawData: new Uint8Array(new Float32Array(values).buffer) };
}

export const attr = {
  int: (name: string, i: number): P.IAttributeProto => ({ name, type: A.INT, i }),
  ints: (name: string, ints: number[]): P.IAttributeProto => ({ name, type: A.INTS, ints }),
  float: (name: string, f: number): P.IAttributeProto => ({ name, type: A.FLOAT, f }),
  floats: (name: string, floats: number[]): P.IAttributeProto => ({ name, type: A.FLOATS, floats }),
  tensor: (name: string, t: P.ITensorProto): P.IAttributeProto => ({ name, type: A.TENSOR, t }),
  graph: (name: string, g: P.IGraphProto): P.IAttributeProto => ({ name, type: A.GRAPH, g }),
};

export function node(
  opType: string,
  name: string,
  input: string[],
  output: string[],
  attribute: P.IAttributeProto[] = [],
  domain?: string,
): P.INodeProto {
  return { opType, name, input, output, attribute, ...(domain !== undefined ? { domain } : {}) };
}

/** Encodes a model of one graph with the default-domain opset `opset`. */
export function model(graph: P.IGraphProto, opset = 17): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: opset }], graph }),
  ).finish();
}

export { T as DataType };

/** Keys of an external-data tensor other than `location` (numbers become decimal strings). */
export interface ExternalKeys {
  readonly offset?: number | string;
  readonly length?: number | string;
  readonly checksum?: string;
  readonly [key: string]: number | string | undefined;
}

/** A tensor whose bytes live in `location` (relative to the model), `data_location = EXTERNAL`. */
export function externalTensor(
  name: string,
  dims: number[],
  dataType: number,
  location: string,
  keys: ExternalKeys = {},
): P.ITensorProto {
  const externalData = [{ key: "location", value: location }];
  for (const [key, v] of Object.entries(keys))
    if (v !== undefined) externalData.push({ key, value: String(v) });
  return { name, dims, dataType, externalData, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL };
}

/** Little-endian bytes of f32 values, as an external data file holds them. */
export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}
