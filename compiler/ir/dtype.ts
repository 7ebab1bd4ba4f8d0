/** Element types of the IR. `i64` values are held as JS numbers by the reference backend (exact within ±2^53). */
export const DTYPES = ["f32", "f16", "f64", "i32", "i64", "i8", "u8", "bool"] as const;
export type DType = (typeof DTYPES)[number];

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}

export function isFloat(d: DType): boolean {
  return d === "f32" || d === "f16" || d === "f64";
}

export function isInt(d: DType): boolean {
  return d === "i32" || d === "i64" || d === "i8" || d === "u8";
}

/** Bytes per element in storage (safetensors, device buffers). */
export function byteSize(d: DType): number {
  switch (d) {
    case "f64":
    case "i64":
      return 8;
    case "f32":
    case "i32":
      return 4;
    case "f16":
      return 2;
    case "i8":
    case "u8":
    case "bool":
      return 1;
  }
}
