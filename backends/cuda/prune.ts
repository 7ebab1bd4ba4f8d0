import type { Stmt } from "../../compiler/kir/types.js";
import { forEachInBody } from "../kir-walk.js";

/**
 * Drops registers that are never read (and their assignments), to a fixpoint: nvcc's
 * `-Werror all-warnings` rejects "declared but never referenced" variables, and expressions have
 * no side effects, so removing them cannot change results.
 */
export function pruneDeadRegisters(body: readonly Stmt[]): readonly Stmt[] {
  let cur = body;
  for (;;) {
    const read = new Set<string>();
    readsIn(cur, read);
    let changed = false;
    const filter = (ss: readonly Stmt[]): Stmt[] =>
      ss.flatMap((s): Stmt[] => {
        switch (s.k) {
          case "decl":
          case "assign":
            if (!read.has(s.name)) {
              changed = true;
              return [];
            }
            return [s];
          case "if":
            return [{ ...s, then: filter(s.then), else: filter(s.else) }];
          case "for":
            return [{ ...s, body: filter(s.body) }];
          case "store":
          case "barrier":
          case "break":
          case "return":
            return [s];
        }
      });
    const next = filter(cur);
    if (!changed) return cur;
    cur = next;
  }
}

/** Registers some expression reads, plus every loop variable (its own header reads it). */
function readsIn(ss: readonly Stmt[], out: Set<string>): void {
  forEachInBody(ss, {
    stmt: (s) => {
      if (s.k === "for") out.add(s.v);
    },
    expr: (e) => {
      if (e.k === "var") out.add(e.name);
    },
  });
}
