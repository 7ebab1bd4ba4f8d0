/**
 * bfloat16 (8 exponent, 7 stored mantissa bits: the top half of an f32) as the KIR interpreter,
 * the runtimes and the CUDA backend see it. Conversions round to nearest even from the f32 value,
 * like CUDA's `__float2bfloat16_rn`; every NaN becomes the canonical 0x7fff.
 */

const F = new Float32Array(1);
const U = new Uint32Array(F.buffer);

/** bf16 bits of `x` (first rounded to f32, as a float computation on the device would be). */
export function f32ToBf16Bits(x: number): number {
  F[0] = x;
  const b = U[0];
  if ((b & 0x7fffffff) > 0x7f800000) return 0x7fff;
  // Adding 0x7fff plus the kept part's lowest bit rounds half to even; no overflow below 2^32 for non-NaN.
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The f32 value of bf16 bits (exact). */
export function bf16BitsToF32(h: number): number {
  U[0] = (h & 0xffff) << 16;
  return F[0];
}

/** `x` rounded to the nearest bf16 value (ties to even), as a number. */
export function roundBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}
