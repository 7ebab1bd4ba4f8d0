import type { Attrs } from "../compiler/ir/attrs.js";
import type { Dim } from "../compiler/ir/sym.js";
import { getOp } from "../compiler/ops/registry.js";
import type { Pass } from "./manager.js";
import {
  applySite,
  blockOfSite,
  finishSizes,
  followMasks,
  insertNode,
  intParam,
  markApplied,
  type PendingSite,
  pendingSites,
  replaceUsesAfter,
  siteLabel,
  streamTokens,
  stringParam,
  tokenBlocks,
} from "./token-sites.js";

/**
 * `pool` policies: `tokens.pool` on the residual stream at the entry of the site's block (like
 * prune). `spatial` finds the patch grid from the token count: N a perfect square, or N - 1 one
 * (then the first token, CLS, is passed through). `temporal` treats each token as one frame
 * (audio, or any token-per-step sequence): groups of `size` consecutive frames. `stride` groups
 * `size` consecutive tokens. The size output joins the token sizes of later merges.
 */
export const insertTokenPoolingPass: Pass = {
  name: "insert-token-pooling",
  description: "apply pool policies: tokens.pool at each site block's entry",
  run(g, ctx) {
    let changed = false;
    for (const s of pendingSites(g, "pool")) {
      if (!getOp("tokens.pool"))
        throw new Error(`${siteLabel(s)}: pooling needs op tokens.pool, which this build lacks`);
      const b = blockOfSite(g, tokenBlocks(g), s);
      const x = b.input;
      const n = streamTokens(s, x);
      const attrs = poolAttrs(s, n);
      const first = g.nodes.find((m) => m.inputs.includes(x))!;
      const opts = { scope: s.scope, ...(s.policy.loc ? { loc: s.policy.loc } : {}) };
      applySite(g, ctx, s, () => {
        const pool = insertNode(g, { before: first }, "tokens.pool", [x], 2, attrs, {
          ...opts,
          names: [`${x.name}_pooled`, `${x.name}_size`],
        });
        replaceUsesAfter(g, x, pool.outputs[0], pool);
        followMasks(g, pool, n, siteLabel(s), "pooling models with attention masks is not supported yet");
        markApplied(g, s, pool);
      });
      ctx.remarks.push(`${siteLabel(s)}: ${String(attrs.mode)} pool, size ${String(attrs.size)}`);
      changed = true;
    }
    return finishSizes(g, ctx) || changed;
  },
};

/** The op's attributes for a site entered by `n` tokens. */
function poolAttrs(s: PendingSite, n: Dim): Attrs {
  const mode = stringParam(s, "mode");
  const size = intParam(s, "size") ?? 2;
  switch (mode) {
    case "stride":
      return { mode, size };
    case "temporal":
      // One token per frame: frames = N. A symbolic N groups the same way as stride does.
      return typeof n === "number" ? { mode, size, frames: n } : { mode: "stride", size };
    case "spatial": {
      if (typeof n !== "number")
        throw new Error(`${siteLabel(s)}: spatial pooling needs a static token count to find the patch grid`);
      for (const p of [0, 1]) {
        const side = Math.round(Math.sqrt(n - p));
        if (side * side === n - p) return { mode, size, protect_first: p, grid: [side, side] };
      }
      throw new Error(
        `${siteLabel(s)}: spatial pooling needs a square patch grid (N or N - 1 a perfect square), but ${n} tokens enter`,
      );
    }
    default:
      throw new Error(`${siteLabel(s)}: pool needs mode spatial, temporal or stride, got ${String(mode)}`);
  }
}
