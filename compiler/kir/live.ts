import { type Dim, symbolName } from "../ir/sym.js";
import { OpError, type LowerCtx, type RefCtx } from "../ops/registry.js";
import type { KernelBuilder } from "./builder.js";
import { add } from "./expr.js";
import type { Binding, Expr } from "./types.js";

/**
 * Live lengths of data-dependent token counts (docs/backends.md, "Adaptive token counts").
 *
 * Adaptive `tokens.prune` gives a token axis whose length K is a data-dependent symbol. Example b
 * has `count[b]` live rows (+1 with `fuse`): its live length L_b. The rows after them are padding,
 * which every op that mixes rows along the axis ignores, so an example's results never depend on
 * the rest of the batch. Devices lay tensors out at K's capacity; the CPU reference at the largest
 * L_b. Kernels read L_b from the prune's `count` output, bound as an extra input (`liveLength`);
 * reference functions get the same per-example lengths from the interpreter (`liveCounts`).
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
  /** The batch the counts index: the consumer's batch axis must be this dim. */
  readonly batch: Dim;
  /**
   * Declares the count buffer (next parameter of `kb`); the returned function gives example b's
   * live length L_b = count[b] (+1 with fuse) as an i32 expression.
   */
  load(kb: KernelBuilder): (b: Expr) => Expr;
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
    batch: src.batch,
    load(kb) {
      const buf = kb.buffer(`live_${src.symbol}`, "i32", "read");
      return (b) => kb.let(`len_${src.symbol}`, add(kb.load(buf, b), src.extra));
    },
  };
}

// The reference side: per input and axis, the live lengths a runGraph node reads (references see no types).
const COUNTS = new WeakMap<RefCtx, (input: number, axis: number) => Int32Array | undefined>();

/**
 * Gives the reference run with `ctx` its inputs' live lengths (count + extra per example) by input
 * and axis (the interpreter does this for axes whose dim is exactly a produced symbol).
 */
export function attachLiveCounts(
  ctx: RefCtx,
  lookup: (input: number, axis: number) => Int32Array | undefined,
): void {
  COUNTS.set(ctx, lookup);
}

/**
 * Example b's live length along `axis` of input `input`, for each b of a batch of `batch`, when
 * that axis is capacity-padded; undefined otherwise (every row is live).
 */
export function liveCounts(ctx: RefCtx, input: number, axis: number, batch: number): Int32Array | undefined {
  const lens = COUNTS.get(ctx)?.(input, axis);
  if (lens && lens.length !== batch)
    throw new OpError(
      `input ${input} axis ${axis} has live counts for a batch of ${lens.length}, but the op's batch is ${batch}`,
    );
  return lens;
}
