import type { Attrs } from "../compiler/ir/attrs.js";
import type { Pass } from "./manager.js";
import {
  applySite,
  blockOfSite,
  intParam,
  markApplied,
  opAccepts,
  importance,
  insertNode,
  pendingSites,
  replaceUsesAfter,
  siteLabel,
  streamTokens,
  stringParam,
  finishSizes,
  followMasks,
  tokenBlocks,
} from "./token-sites.js";

/**
 * `merge` policies (ToMe): in the site's block, between the attention and the MLP, the residual
 * stream is merged by `tokens.merge` with the attention's keys averaged over heads as the metric
 * (what ToMe uses; no extra projection). `r` per site or `schedule[i]` for the i-th site (0 = no
 * merge). Sizes flow to later merges, prunes and pools; `proportional` adds log(size) to every
 * later attention (token-sites.ts, threadSizes).
 */
export const insertTokenMergingPass: Pass = {
  name: "insert-token-merging",
  description: "apply merge policies: ToMe merging after each site block's attention, sizes tracked",
  run(g, ctx) {
    let changed = false;
    for (const s of pendingSites(g, "merge")) {
      const sched = s.params.schedule;
      const r = Array.isArray(sched) ? sched[s.siteIndex] : intParam(s, "r");
      if (typeof r !== "number" || !Number.isInteger(r) || r < 0)
        throw new Error(`${siteLabel(s)}: needs 'r' or a 'schedule' entry for this site (an integer >= 0)`);
      if (r === 0) {
        markApplied(g, s, undefined);
        ctx.remarks.push(`${siteLabel(s)}: r = 0, nothing merged`);
        changed = true;
        continue;
      }
      const attrs: Attrs = { r, protect_first: 1, ...mergeMethod(s) };
      const b = blockOfSite(g, tokenBlocks(g), s);
      const mid = b.attnAdd.outputs[0];
      const n = streamTokens(s, mid);
      if (typeof n === "number" && 2 * r > n - 1)
        throw new Error(
          `${siteLabel(s)}: r = ${r} needs ${2 * r} tokens besides CLS, but ${n - 1} enter the merge`,
        );
      const keys = b.attention.inputs[1]!;
      const opts = { scope: s.scope, ...(s.policy.loc ? { loc: s.policy.loc } : {}) };
      applySite(g, ctx, s, () => {
        const mean = { axes: [1], keepdims: 0 };
        const metric = insertNode(g, { after: b.attnAdd }, "ReduceMean", [keys], 1, mean, {
          ...opts,
          names: [`${keys.name}_metric`],
        });
        // MCTF informativeness: the attention's importance (CLS attention unless it emits another kind).
        const info =
          attrs.method === "multi_criteria" ? [null, importance(g, s, b.attention, "cls", true)] : [];
        const merge = insertNode(
          g,
          { after: metric },
          "tokens.merge",
          [mid, metric.outputs[0], ...info],
          2,
          attrs,
          {
            ...opts,
            names: [`${mid.name}_merged`, `${mid.name}_size`],
          },
        );
        replaceUsesAfter(g, mid, merge.outputs[0], merge);
        followMasks(g, merge, n, siteLabel(s), "merging models with attention masks is not supported yet");
        markApplied(g, s, merge);
      });
      ctx.remarks.push(`${siteLabel(s)}: merged r = ${r} after ${b.attention.outputs[0].name}`);
      changed = true;
    }
    return finishSizes(g, ctx) || changed;
  },
};

/** The op's `method` attribute for the policy's method, once tokens.merge has it. */
function mergeMethod(s: Parameters<typeof siteLabel>[0]): Attrs {
  const m = stringParam(s, "method") ?? "bipartite";
  if (opAccepts("tokens.merge", "method", m)) return { method: m };
  if (m === "bipartite") return {};
  throw new Error(
    `${siteLabel(s)}: merge method '${m}' needs tokens.merge attribute method = "${m}", which this build's op does not have`,
  );
}
