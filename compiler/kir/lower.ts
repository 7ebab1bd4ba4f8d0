import { attr, optAttr, type AttrValue, type Attrs } from "../ir/attrs.js";
import type { DType } from "../ir/dtype.js";
import { mul } from "../ir/sym.js";
import type { TensorType } from "../ir/types.js";
import {
  type ElementStrides,
  type LowerCtx,
  OpError,
  type OpDef,
  type PointwiseCtx,
} from "../ops/registry.js";
import { elementwiseKernel, unravel, broadcastOffset } from "./builder.js";
import { KirError, cast, ne } from "./expr.js";
import { type Expr, type Lowering, type Target, registerType, storageType } from "./types.js";

/** Loads element `index` of a storage array as the register form of an IR dtype (bool from u32). */
export function loadAs(
  kb: { load(a: string, i: Expr): Expr },
  array: string,
  index: Expr,
  dtype: DType,
  target: Target,
): Expr {
  const raw = kb.load(array, index);
  if (dtype === "bool") return ne(raw, 0);
  return cast(raw, registerType(dtype, target));
}

/** Converts a register value to the storage form of an IR dtype (bool to u32 0/1). */
export function toStorage(v: Expr, dtype: DType, target: Target): Expr {
  return cast(v, storageType(dtype, target));
}

export function lowerCtx(
  def: OpDef,
  name: string,
  attrs: Attrs,
  inputs: readonly (TensorType | null)[],
  outputs: readonly TensorType[],
  target: Target,
  views: {
    readonly inputs?: readonly (ElementStrides | undefined)[];
    readonly output?: ElementStrides;
  } = {},
  bound?: LowerCtx["bound"],
): LowerCtx {
  return {
    op: def.name,
    name,
    attrs,
    inputs,
    outputs,
    target,
    ...(views.inputs ? { inputViews: views.inputs } : {}),
    ...(views.output ? { outputView: views.output } : {}),
    ...(bound ? { bound } : {}),
    attr: <T extends AttrValue>(n: string) => attr<T>(def.attrs, attrs, n),
    optAttr: <T extends AttrValue>(n: string) => optAttr<T>(def.attrs, attrs, n),
    fail: (m: string): never => {
      throw new OpError(m);
    },
  };
}

export function pointwiseCtx(ctx: LowerCtx, def: OpDef): PointwiseCtx {
  return {
    attrs: ctx.attrs,
    inputs: ctx.inputs.map((t) => t?.dtype ?? null),
    output: ctx.outputs[0].dtype,
    target: ctx.target,
    attr: <T extends AttrValue>(n: string) => attr<T>(def.attrs, ctx.attrs, n),
    optAttr: <T extends AttrValue>(n: string) => optAttr<T>(def.attrs, ctx.attrs, n),
    fail: ctx.fail,
  };
}

/** One elementwise node as a kernel: each output element reads its broadcast inputs. */
export function lowerPointwise(def: OpDef, ctx: LowerCtx): Lowering {
  const rule = def.pointwise;
  if (!rule) return ctx.fail(`${def.name} has no pointwise rule`);
  const out = ctx.outputs[0];
  const total = mul(...out.dims);
  const kernel = elementwiseKernel(
    `${ctx.name}`,
    total,
    Math.min(64, ctx.target.maxWorkgroupInvocations),
    (kb) => {
      const ins = ctx.inputs.map((t, i) =>
        t ? kb.buffer(`in${i}`, storageType(t.dtype, ctx.target), "read") : null,
      );
      const o = kb.buffer("out", storageType(out.dtype, ctx.target), "read_write");
      return (i) => {
        const idx = unravel(kb, i, out.dims);
        const args = ctx.inputs.map((t, j) => {
          const buf = ins[j];
          if (!t || !buf) return null;
          return loadAs(kb, buf, broadcastOffset(idx, t.dims), t.dtype, ctx.target);
        });
        const present = args.filter((a): a is Expr => a !== null);
        if (present.length !== args.length)
          ctx.fail(`${def.name}: optional inputs are not supported in pointwise form`);
        const v = rule(present, pointwiseCtx(ctx, def));
        kb.store(o, i, toStorage(v, out.dtype, ctx.target));
      };
    },
  );
  const args = ctx.inputs.flatMap((t, i) => (t ? [{ kind: "input" as const, index: i }] : []));
  return { launches: [{ kernel, args: [...args, { kind: "output", index: 0 }] }], scratch: [] };
}

/**
 * Lowers one node to kernels: pointwise ops through their scalar rule, others through `lower`.
 * Views need no kernel (the scheduler aliases their storage) and are an error here.
 */
export function lowerNode(def: OpDef, ctx: LowerCtx): Lowering {
  if (def.view) throw new KirError(`${def.name} is a view: it shares its input's storage and has no kernel`);
  if (def.pointwise) return lowerPointwise(def, ctx);
  if (def.lower) return def.lower(ctx);
  throw new KirError(`op '${def.name}' has no kernel lowering`);
}
