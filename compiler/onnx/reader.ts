/** Decoding ONNX protobufs (via onnx-proto) into plain numbers, dtypes and tensors. */
import onnxProto from "onnx-proto";
import type { DType } from "../ir/dtype.js";
import { f16BitsToF32, makeTensor, numel, type Tensor } from "../ir/tensor.js";

export const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.ModelProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/** An ONNX model that cannot be imported; the message names the file (and node, where there is one). */
export class OnnxImportError extends Error {
  override name = "OnnxImportError";
}

/** protobufjs hands out int64 fields as numbers or `Long`s. */
type IntLike = number | { toNumber(): number } | null | undefined;

/** An int64 field as a JS number (exact below 2^53, which covers every dim and index we handle). */
export function toNum(x: IntLike): number {
  if (x === null || x === undefined) return 0;
  return typeof x === "number" ? x : x.toNumber();
}

/** The protobuf size limit; larger models keep their weights as external data, which we do not read yet. */
export const MAX_MODEL_BYTES = 2 ** 31 - 1;

/** Decodes a ModelProto; truncated or corrupt bytes become an `OnnxImportError` naming `file`. */
export function decodeModel(bytes: Uint8Array, file: string, maxBytes = MAX_MODEL_BYTES): ModelProto {
  if (bytes.length > maxBytes)
    throw new OnnxImportError(
      `${file}: ${bytes.length} bytes is over the ${maxBytes}-byte limit for ONNX models`,
    );
  if (bytes.length === 0) throw new OnnxImportError(`${file}: empty file, not an ONNX model`);
  let m: ModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new OnnxImportError(`${file}: not a valid ONNX model (protobuf decoding failed: ${why})`);
  }
  if (!m.graph) throw new OnnxImportError(`${file}: the ONNX model has no graph`);
  return m;
}

const DT = onnx.TensorProto.DataType;

/** ONNX element type -> IR dtype, or undefined for types the IR lacks. */
export function dtypeOf(elemType: number): DType | undefined {
  switch (elemType) {
    case DT.FLOAT:
      return "f32";
    case DT.FLOAT16:
      return "f16";
    case DT.DOUBLE:
      return "f64";
    case DT.INT32:
      return "i32";
    case DT.INT64:
      return "i64";
    case DT.INT8:
      return "i8";
    case DT.UINT8:
      return "u8";
    case DT.BOOL:
      return "bool";
    default:
      return undefined;
  }
}

/** The ONNX name of an element type, for messages. */
export function elemTypeName(elemType: number): string {
  return (DT as unknown as Record<number, string>)[elemType] ?? String(elemType);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function readRaw(dtype: DType, raw: Uint8Array, n: number): ArrayLike<number> {
  const size = { f32: 4, f16: 2, f64: 8, i32: 4, i64: 8, i8: 1, u8: 1, bool: 1 }[dtype];
  if (raw.length !== n * size) throw new Error(`raw_data holds ${raw.length} bytes, expected ${n * size}`);
  // Bulk copies for the common weight dtypes (little-endian hosts): per-element DataView reads of a
  // 346 MB model took seconds and a boxed number array per tensor.
  if (LITTLE_ENDIAN && (dtype === "f32" || dtype === "f64" || dtype === "i32")) {
    const bytes = new Uint8Array(raw); // an aligned copy owning its buffer (Buffer.slice would be a view)
    if (dtype === "f32") return new Float32Array(bytes.buffer, 0, n);
    if (dtype === "f64") return new Float64Array(bytes.buffer, 0, n);
    return new Int32Array(bytes.buffer, 0, n);
  }
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (dtype) {
      case "f32":
        out[i] = dv.getFloat32(o, true);
        break;
      case "f16":
        out[i] = f16BitsToF32(dv.getUint16(o, true));
        break;
      case "f64":
        out[i] = dv.getFloat64(o, true);
        break;
      case "i32":
        out[i] = dv.getInt32(o, true);
        break;
      case "i64":
        out[i] = Number(dv.getBigInt64(o, true));
        break;
      case "i8":
        out[i] = dv.getInt8(o);
        break;
      case "u8":
      case "bool":
        out[i] = dv.getUint8(o);
        break;
    }
  }
  return out;
}

/** The typed field that holds `dtype` values when raw_data is absent (ONNX TensorProto rules). */
function readTyped(dtype: DType, t: TensorProto): number[] {
  switch (dtype) {
    case "f32":
      return [...(t.floatData ?? [])];
    case "f64":
      return [...(t.doubleData ?? [])];
    case "i64":
      return (t.int64Data ?? []).map(toNum);
    case "f16":
      return (t.int32Data ?? []).map((b) => f16BitsToF32(b & 0xffff));
    case "i32":
    case "i8":
    case "u8":
    case "bool":
      return [...(t.int32Data ?? [])];
  }
}

/** Throws unless every dim is a size: an integer in [0, 2^53). */
export function checkDims(dims: readonly number[]): void {
  const bad = dims.findIndex((d) => !Number.isSafeInteger(d) || d < 0);
  if (bad >= 0) throw new Error(`dim ${bad} of [${dims.join(", ")}] is ${dims[bad]}, not a valid size`);
}

/** A TensorProto as a host tensor; errors say what is wrong without naming the tensor (the caller does). */
export function readTensor(t: TensorProto): Tensor {
  const elem = t.dataType ?? 0;
  const dtype = dtypeOf(elem);
  if (!dtype) throw new Error(`element type ${elemTypeName(elem)} is not supported`);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)
    throw new Error("external data (weights outside the .onnx file) is not supported yet");
  const shape = (t.dims ?? []).map(toNum);
  checkDims(shape);
  const n = numel(shape);
  // Checked before any allocation: the claimed size comes from the file, not from the data it holds.
  if (!Number.isSafeInteger(n)) throw new Error(`shape [${shape.join(", ")}] has too many elements`);
  const values = t.rawData && t.rawData.length > 0 ? readRaw(dtype, t.rawData, n) : readTyped(dtype, t);
  if (values.length !== n)
    throw new Error(`holds ${values.length} value(s) but its shape [${shape.join(", ")}] needs ${n}`);
  return makeTensor(dtype, shape, values);
}
