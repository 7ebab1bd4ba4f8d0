import type { Expr, Stmt } from "../../compiler/kir/types.js";

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

function readsIn(ss: readonly Stmt[], out: Set<string>): void {
  for (const s of ss) {
    switch (s.k) {
      case "decl":
        exprReads(s.init, out);
        break;
      case "assign":
        exprReads(s.value, out);
        break;
      case "store":
        exprReads(s.index, out);
        exprReads(s.value, out);
        break;
      case "if":
        exprReads(s.cond, out);
        readsIn(s.then, out);
        readsIn(s.else, out);
        break;
      case "for":
        out.add(s.v); // the loop variable is always "used" by its own header
        exprReads(s.from, out);
        exprReads(s.to, out);
        readsIn(s.body, out);
        break;
      case "barrier":
      case "break":
      case "return":
        break;
    }
  }
}

function exprReads(e: Expr, out: Set<string>): void {
  switch (e.k) {
    case "var":
      out.add(e.name);
      return;
    case "const":
    case "sym":
    case "builtin":
      return;
    case "unary":
    case "cast":
      exprReads(e.a, out);
      return;
    case "binary":
      exprReads(e.a, out);
      exprReads(e.b, out);
      return;
    case "select":
      exprReads(e.cond, out);
      exprReads(e.a, out);
      exprReads(e.b, out);
      return;
    case "load":
      exprReads(e.index, out);
      return;
    case "subgroup":
      exprReads(e.a, out);
      if (e.arg) exprReads(e.arg, out);
      return;
  }
}
