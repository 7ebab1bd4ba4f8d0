/** Decoding ONNX protobufs (via onnx-proto) into plain numbers, dtypes and tensors. */
import onnxProto from "onnx-proto";
import type { DType } from "../ir/dtype.js";
import { f16BitsToF32, makeTensor, numel, type Tensor, type TensorData } from "../ir/tensor.js";
import { externalRef, readExternal } from "./external.js";

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

/** The protobuf size limit; larger models keep their weights as external data. */
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

const BYTES: Readonly<Record<DType, number>> = {
  f32: 4,
  f16: 2,
  f64: 8,
  i32: 4,
  i64: 8,
  i8: 1,
  u8: 1,
  bool: 1,
};

/** How `readTensor` gets at tensor bytes. */
export interface TensorReadCtx {
  /** The model's directory, which external data locations are relative to; without it they are an error. */
  readonly baseDir?: string;
  /**
   * raw_data views into a buffer the importer owns and nothing else reads afterwards: f32/i32/f64 weights
   * become typed-array views of it instead of copies (see `alignInPlace`).
   */
  readonly ownsBuffer?: boolean;
}

/** Length in bytes of `n` as a protobuf varint. */
function varintLength(n: number): number {
  let k = 1;
  for (; n >= 128; k++) n = Math.floor(n / 128);
  return k;
}

/**
 * Moves an owned raw_data's bytes down to the previous multiple of `align` so a typed array can view
 * them. The bytes they overwrite are the field's own tag and length varint (already decoded, and no other
 * view covers them), so this is only done when that header is at least as long as the shift.
 */
function alignInPlace(raw: Uint8Array, align: number): Uint8Array | undefined {
  const shift = raw.byteOffset % align;
  if (shift === 0) return raw;
  if (shift > 1 + varintLength(raw.length)) return undefined;
  const whole = new Uint8Array(raw.buffer);
  whole.copyWithin(raw.byteOffset - shift, raw.byteOffset, raw.byteOffset + raw.length);
  return whole.subarray(raw.byteOffset - shift, raw.byteOffset - shift + raw.length);
}

/** Dtypes whose storage is their little-endian wire format, on this host. */
const VIEWABLE: ReadonlySet<DType> = new Set<DType>(LITTLE_ENDIAN ? ["f32", "f64", "i32", "i8", "u8"] : []);

/** A typed array of `dtype` over `raw` (little-endian hosts; dtypes whose storage is their wire format). */
function viewRaw(dtype: DType, raw: Uint8Array, n: number): TensorData | undefined {
  if (!LITTLE_ENDIAN || raw.byteOffset % BYTES[dtype] !== 0) return undefined;
  switch (dtype) {
    case "f32":
      return new Float32Array(raw.buffer, raw.byteOffset, n);
    case "f64":
      return new Float64Array(raw.buffer, raw.byteOffset, n);
    case "i32":
      return new Int32Array(raw.buffer, raw.byteOffset, n);
    case "i8":
      return new Int8Array(raw.buffer, raw.byteOffset, n);
    case "u8":
      return new Uint8Array(raw.buffer, raw.byteOffset, n);
    case "f16":
    case "i64":
    case "bool":
      return undefined;
  }
}

/**
 * Little-endian bytes as tensor storage. `owned` bytes (a buffer nobody else reads) are viewed when
 * their dtype allows; others are copied once into fresh storage.
 */
function readRaw(dtype: DType, shape: number[], raw: Uint8Array, n: number, owned: boolean): Tensor {
  if (raw.length !== n * BYTES[dtype])
    throw new Error(`raw_data holds ${raw.length} bytes, expected ${n * BYTES[dtype]}`);
  if (owned && VIEWABLE.has(dtype)) {
    // Only for dtypes viewRaw takes: once moved, `raw` no longer holds the tensor.
    const aligned = alignInPlace(raw, BYTES[dtype]);
    const view = aligned && viewRaw(dtype, aligned, n);
    if (view) return { dtype, shape, data: view };
  }
  // One copy straight into aligned storage; per-element DataView reads of a 346 MB model took seconds.
  const copy = viewRaw(dtype, new Uint8Array(raw), n);
  if (copy) return { dtype, shape, data: copy };
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const t = makeTensor(dtype, shape);
  const out = t.data;
  const size = BYTES[dtype];
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
        out[i] = dv.getUint8(o);
        break;
      case "bool":
        out[i] = dv.getUint8(o) !== 0 ? 1 : 0;
        break;
    }
  }
  return t;
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

/**
 * A TensorProto as a host tensor; errors say what is wrong without naming the tensor (the caller does).
 * External data is read from `ctx.baseDir`.
 */
export function readTensor(t: TensorProto, ctx: TensorReadCtx = {}): Tensor {
  const elem = t.dataType ?? 0;
  const dtype = dtypeOf(elem);
  if (!dtype) throw new Error(`element type ${elemTypeName(elem)} is not supported`);
  const shape = (t.dims ?? []).map(toNum);
  checkDims(shape);
  const n = numel(shape);
  // Checked before any allocation: the claimed size comes from the file, not from the data it holds.
  if (!Number.isSafeInteger(n)) throw new Error(`shape [${shape.join(", ")}] has too many elements`);
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const ref = externalRef(t);
    if (t.rawData && t.rawData.length > 0) throw new Error("has both external data and raw_data");
    if (ctx.baseDir === undefined)
      throw new Error(
        `keeps its data in external file '${ref.location}', but the model was given as bytes without its directory (import it from its path)`,
      );
    const bytes = n * BYTES[dtype];
    if (!Number.isSafeInteger(bytes)) throw new Error(`shape [${shape.join(", ")}] has too many elements`);
    return readRaw(dtype, shape, readExternal(ref, ctx.baseDir, bytes), n, true);
  }
  if (t.rawData && t.rawData.length > 0) return readRaw(dtype, shape, t.rawData, n, ctx.ownsBuffer === true);
  const values = readTyped(dtype, t);
  if (values.length !== n)
    throw new Error(`holds ${values.length} value(s) but its shape [${shape.join(", ")}] needs ${n}`);
  return makeTensor(dtype, shape, values);
}
