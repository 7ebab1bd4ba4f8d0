import { type Dim, symbolName } from "../ir/sym.js";
import type { LowerCtx } from "../ops/registry.js";
import type { KernelBuilder } from "./builder.js";
import { add, dimExpr, i32, max } from "./expr.js";
import type { Binding, Expr } from "./types.js";

/**
 * Live lengths of data-dependent token counts (docs/backends.md, "Adaptive token counts").
 *
 * Adaptive `tokens.prune` gives a token axis whose length K is a data-dependent symbol. Devices
 * allocate and lay out every tensor at K's capacity (the symbol is bound to it), but the CPU
 * reference runs with K = max over the batch of the kept count (+1 with `fuse`): that is the live
 * length L. Rows in [L, capacity) are padding. Ops that mix rows along such an axis (attention
 * keys) read L from the prune's `count` output, bound to their kernels as an extra input.
 */
export interface LiveSource {
  /** The data-dependent symbol. */
  readonly symbol: string;
  /** Binding index of the prune's count (i32 `[B]`) among the lowering's inputs. */
  readonly index: number;
  /** Length of the count vector (the batch). */
  readonly batch: Dim;
  /** Live rows past the largest kept count (1 with EViT `fuse`: the fused row). */
  readonly extra: number;
}

/** A live length a lowering uses: bind `binding` as a parameter and read it with `load`. */
export interface LiveLength {
  readonly symbol: string;
  readonly binding: Binding;
  /** Declares the count buffer (next parameter of `kb`) and returns L as an i32 expression. */
  load(kb: KernelBuilder): Expr;
}

interface LiveState {
  readonly sources: ReadonlyMap<string, LiveSource>;
  readonly used: Set<string>;
}

// Kept beside the context rather than in it: LowerCtx is the ops' shared interface.
const STATE = new WeakMap<LowerCtx, LiveState>();

/** Makes `sources` available to the lowering run with `ctx` (the scheduler does this). */
export function attachLive(ctx: LowerCtx, sources: readonly LiveSource[]): void {
  STATE.set(ctx, { sources: new Map(sources.map((s) => [s.symbol, s])), used: new Set() });
}

/** The symbols of `attachLive` sources the lowering has not asked for with `liveLength`. */
export function unusedLive(ctx: LowerCtx): string[] {
  const st = STATE.get(ctx);
  return st ? [...st.sources.keys()].filter((s) => !st.used.has(s)) : [];
}

/**
 * The live length of dim `d` when it is exactly a data-dependent symbol whose count the scheduler
 * attached; undefined otherwise (the dim is then to be used as is).
 */
export function liveLength(ctx: LowerCtx, d: Dim): LiveLength | undefined {
  const name = symbolName(d);
  const st = STATE.get(ctx);
  const src = name !== undefined ? st?.sources.get(name) : undefined;
  if (!st || !src) return undefined;
  st.used.add(src.symbol);
  return {
    symbol: src.symbol,
    binding: { kind: "input", index: src.index },
    load(kb) {
      const buf = kb.buffer(`live_${src.symbol}`, "i32", "read");
      const l = kb.var(`live_${src.symbol}`, i32(0));
      kb.for("live_b", 0, dimExpr(src.batch), (b) => kb.set(l, max(l, kb.load(buf, b))));
      return kb.let(`len_${src.symbol}`, add(l, src.extra));
    },
  };
}
