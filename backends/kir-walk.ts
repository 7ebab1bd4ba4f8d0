import type { Expr, Stmt } from "../compiler/kir/types.js";

/**
 * Structural walks over KIR kernel bodies, shared by the WGSL and CUDA renderers so that each
 * question a backend asks of a kernel (which types, whether it syncs, which registers are read)
 * is one predicate rather than another copy of the Expr/Stmt switches.
 */

/** The direct operands of an expression. */
export function exprOperands(e: Expr): readonly Expr[] {
  switch (e.k) {
    case "const":
    case "sym":
    case "var":
    case "builtin":
      return [];
    case "unary":
    case "cast":
      return [e.a];
    case "binary":
      return [e.a, e.b];
    case "select":
      return [e.cond, e.a, e.b];
    case "load":
      return [e.index];
    case "subgroup":
      return e.arg ? [e.a, e.arg] : [e.a];
  }
}

/** The expressions a statement holds itself (not those of the statements nested in it). */
export function stmtExprs(s: Stmt): readonly Expr[] {
  switch (s.k) {
    case "decl":
      return [s.init];
    case "assign":
      return [s.value];
    case "store":
      return [s.index, s.value];
    case "if":
      return [s.cond];
    case "for":
      return [s.from, s.to];
    case "barrier":
    case "break":
    case "return":
      return [];
  }
}

/** The statement lists nested in a statement. */
export function nestedBodies(s: Stmt): readonly (readonly Stmt[])[] {
  switch (s.k) {
    case "if":
      return [s.then, s.else];
    case "for":
      return [s.body];
    case "decl":
    case "assign":
    case "store":
    case "barrier":
    case "break":
    case "return":
      return [];
  }
}

/** Predicates on statements and on expressions; a missing one matches nothing. */
export interface KirMatch {
  readonly stmt?: (s: Stmt) => boolean;
  readonly expr?: (e: Expr) => boolean;
}

/** Whether a statement of `body` at any depth, or an expression in one (operands too), matches. */
export function someInBody(body: readonly Stmt[], m: KirMatch): boolean {
  const matchExpr = m.expr;
  const inExpr = (e: Expr): boolean =>
    matchExpr !== undefined && (matchExpr(e) || exprOperands(e).some(inExpr));
  const inStmt = (s: Stmt): boolean =>
    (m.stmt?.(s) ?? false) || stmtExprs(s).some(inExpr) || nestedBodies(s).some((b) => b.some(inStmt));
  return body.some(inStmt);
}

/** Calls `visit` on every statement of `body` at any depth and every expression in them (operands too). */
export function forEachInBody(
  body: readonly Stmt[],
  visit: { readonly stmt?: (s: Stmt) => void; readonly expr?: (e: Expr) => void },
): void {
  someInBody(body, {
    stmt: (s) => {
      visit.stmt?.(s);
      return false;
    },
    expr: (e) => {
      visit.expr?.(e);
      return false;
    },
  });
}
