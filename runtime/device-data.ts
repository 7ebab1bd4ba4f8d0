/**
 * Host tensors <-> device storage bytes at the runtime boundary. Devices hold IR i64/i8/u8 as
 * i32, bool as u32 0/1, f64 as f32, f16 as f16 or f32 and f32 as f32 or bf16 (the target decides); the conversion
 * back restores the IR dtype.
 */
import type { DType } from "../compiler/ir/dtype.js";
import { allocData, f16BitsToF32, f32ToF16Bits, roundF16, type Tensor } from "../compiler/ir/tensor.js";
import { bf16BitsToF32, f32ToBf16Bits } from "../compiler/kir/bf16.js";
import type { KType } from "../compiler/kir/types.js";
import { deviceBytes } from "./plan.js";

export class DeviceDataError extends Error {}

/** Device bytes of a tensor in `storage` (padded to deviceBytes). `what` names it in errors. */
export function toDevice(t: Tensor, storage: Exclude<KType, "bool">, what: string): Uint8Array<ArrayBuffer> {
  const n = t.data.length;
  const out = new Uint8Array(deviceBytes(storage, n));
  const src = t.data;
  switch (storage) {
    case "f32":
      new Float32Array(out.buffer, 0, n).set(src);
      break;
    case "f16": {
      const h = new Uint16Array(out.buffer, 0, n);
      for (let i = 0; i < n; i++) h[i] = f32ToF16Bits(src[i]);
      break;
    }
    case "bf16": {
      const h = new Uint16Array(out.buffer, 0, n);
      for (let i = 0; i < n; i++) h[i] = f32ToBf16Bits(src[i]);
      break;
    }
    case "i32": {
      const v = new Int32Array(out.buffer, 0, n);
      for (let i = 0; i < n; i++) {
        const x = src[i];
        if (!Number.isInteger(x) || x < -(2 ** 31) || x >= 2 ** 31)
          throw new DeviceDataError(`${what}: element ${i} (${x}) does not fit the device's i32 storage`);
        v[i] = x;
      }
      break;
    }
    case "u32": {
      const v = new Uint32Array(out.buffer, 0, n);
      for (let i = 0; i < n; i++) v[i] = src[i] !== 0 ? 1 : 0;
      break;
    }
  }
  return out;
}

/** A host tensor of `dtype`/`shape` from device bytes in `storage`. */
export function fromDevice(
  bytes: ArrayBuffer,
  storage: Exclude<KType, "bool">,
  dtype: DType,
  shape: readonly number[],
): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = allocData(dtype, n);
  switch (storage) {
    case "f32": {
      const v = new Float32Array(bytes, 0, n);
      if (dtype === "f16") for (let i = 0; i < n; i++) data[i] = roundF16(v[i]);
      else data.set(v);
      break;
    }
    case "f16": {
      const v = new Uint16Array(bytes, 0, n);
      for (let i = 0; i < n; i++) data[i] = f16BitsToF32(v[i]);
      break;
    }
    case "bf16": {
      const v = new Uint16Array(bytes, 0, n);
      for (let i = 0; i < n; i++)
        data[i] = dtype === "f16" ? roundF16(bf16BitsToF32(v[i])) : bf16BitsToF32(v[i]);
      break;
    }
    case "i32":
      data.set(new Int32Array(bytes, 0, n));
      break;
    case "u32": {
      const v = new Uint32Array(bytes, 0, n);
      for (let i = 0; i < n; i++) data[i] = dtype === "bool" ? (v[i] !== 0 ? 1 : 0) : v[i];
      break;
    }
  }
  return { dtype, shape: [...shape], data };
}
