import type { SelectorSegment } from "./ast.js";

/** A policy selector as written, canonically: `blocks[2..11].attn`, `blocks[4].mlp`, `blocks.*`. */
export function selectorText(sel: readonly SelectorSegment[]): string {
  return sel
    .map((s) => {
      if (!s.range) return s.text;
      const { lo, hi } = s.range;
      return `${s.text}[${lo === hi ? lo : `${lo}..${hi}`}]`;
    })
    .join(".");
}
