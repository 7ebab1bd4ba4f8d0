import { type DType, isFloat } from "./dtype.js";

/** Storage of a concrete tensor on the host. f16 values are held as f32 rounded to half precision. */
export type TensorData = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array;

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function allocData(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case "f32":
    case "f16":
      return new Float32Array(n);
    case "f64":
    case "i64":
      return new Float64Array(n);
    case "i32":
      return new Int32Array(n);
    case "i8":
      return new Int8Array(n);
    case "u8":
    case "bool":
      return new Uint8Array(n);
  }
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** f32 -> f16 bits, round to nearest even. */
export function f32ToF16Bits(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  if ((h & 0x7fff) >= 0x7c00) return sign | 0x7c00;
  e = 0;
  return sign | h;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function roundF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}

/** Converts one number to what an element of `dtype` holds (ONNX Cast semantics for the common cases). */
export function castScalar(dtype: DType, x: number): number {
  switch (dtype) {
    case "f32":
      return Math.fround(x);
    case "f16":
      return roundF16(x);
    case "f64":
      return x;
    case "bool":
      return x !== 0 && !Number.isNaN(x) ? 1 : 0;
    case "i32":
    case "i64":
    case "i8":
    case "u8":
      return Number.isFinite(x) ? Math.trunc(x) : 0;
  }
}

/** Builds a tensor, converting values into the storage of `dtype`. */
export function makeTensor(dtype: DType, shape: readonly number[], values?: ArrayLike<number>): Tensor {
  const n = numel(shape);
  const data = allocData(dtype, n);
  if (values !== undefined) {
    if (values.length !== n)
      throw new Error(`tensor of shape [${shape.join(", ")}] needs ${n} values, got ${values.length}`);
    if (dtype === "f16") for (let i = 0; i < n; i++) data[i] = roundF16(values[i]);
    else if (dtype === "bool") for (let i = 0; i < n; i++) data[i] = values[i] !== 0 ? 1 : 0;
    else if (isFloat(dtype) || dtype === "i64") for (let i = 0; i < n; i++) data[i] = values[i];
    else for (let i = 0; i < n; i++) data[i] = castScalar(dtype, values[i]);
  }
  return Object.freeze({ dtype, shape: Object.freeze([...shape]), data });
}

export function scalar(dtype: DType, x: number): Tensor {
  return makeTensor(dtype, [], [x]);
}
