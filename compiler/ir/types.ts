import type { DType } from "./dtype.js";
import { type Dim, dimEquals, printDim } from "./sym.js";

export const AXIS_ROLES = ["batch", "token", "channel", "head", "time"] as const;
export type AxisRole = (typeof AXIS_ROLES)[number];

export function isAxisRole(s: string): s is AxisRole {
  return (AXIS_ROLES as readonly string[]).includes(s);
}

/** An immutable tensor type; `axes[i]` optionally names the role of dimension i. */
export interface TensorType {
  readonly dtype: DType;
  readonly dims: readonly Dim[];
  readonly axes?: readonly (AxisRole | null)[];
}

export function tensorType(
  dtype: DType,
  dims: readonly Dim[],
  axes?: readonly (AxisRole | null)[],
): TensorType {
  if (axes !== undefined) {
    if (axes.length !== dims.length)
      throw new Error(`axes has ${axes.length} entries for rank ${dims.length}`);
    if (axes.every((a) => a === null)) axes = undefined;
  }
  return Object.freeze({
    dtype,
    dims: Object.freeze([...dims]),
    ...(axes ? { axes: Object.freeze([...axes]) } : {}),
  });
}

export function rank(t: TensorType): number {
  return t.dims.length;
}

/** Index of the axis with the given role, or -1. */
export function axisOf(t: TensorType, role: AxisRole): number {
  return t.axes ? t.axes.indexOf(role) : -1;
}

export function withDims(
  t: TensorType,
  dims: readonly Dim[],
  axes?: readonly (AxisRole | null)[],
): TensorType {
  return tensorType(t.dtype, dims, axes);
}

/** Same dtype and dims (axis roles are annotations and are compared separately). */
export function sameShapeType(a: TensorType, b: TensorType): boolean {
  return (
    a.dtype === b.dtype && a.dims.length === b.dims.length && a.dims.every((d, i) => dimEquals(d, b.dims[i]))
  );
}

export function sameAxes(a: TensorType, b: TensorType): boolean {
  const n = a.dims.length;
  for (let i = 0; i < n; i++) if ((a.axes?.[i] ?? null) !== (b.axes?.[i] ?? null)) return false;
  return true;
}

/** `f32[B@batch, N@token, 192]` */
export function printType(t: TensorType): string {
  const parts = t.dims.map((d, i) => {
    const role = t.axes?.[i];
    return role ? `${printDim(d)}@${role}` : printDim(d);
  });
  return `${t.dtype}[${parts.join(", ")}]`;
}
