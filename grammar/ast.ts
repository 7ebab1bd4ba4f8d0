/** The typed AST of a `.tokr` program (docs/language.md), built from the CST by visitor.ts. */

/** A 1-based source position; `len` is how many columns the caret underlines. */
export interface Pos {
  readonly line: number;
  readonly col: number;
  readonly len: number;
}

export interface Ident {
  readonly name: string;
  readonly pos: Pos;
}

export type Expr =
  | { readonly k: "int"; readonly value: number; readonly pos: Pos }
  | { readonly k: "float"; readonly value: number; readonly pos: Pos }
  | { readonly k: "string"; readonly value: string; readonly pos: Pos }
  | { readonly k: "bool"; readonly value: boolean; readonly pos: Pos }
  | { readonly k: "list"; readonly items: readonly Expr[]; readonly pos: Pos }
  /** A (possibly dotted) name: a variable, constant, or, as a callee, an op or block. */
  | { readonly k: "name"; readonly name: string; readonly pos: Pos }
  | { readonly k: "call"; readonly callee: Expr; readonly args: readonly Arg[]; readonly pos: Pos }
  | { readonly k: "index"; readonly base: Expr; readonly items: readonly SliceItem[]; readonly pos: Pos }
  | { readonly k: "binary"; readonly op: BinaryOp; readonly a: Expr; readonly b: Expr; readonly pos: Pos }
  | { readonly k: "neg"; readonly e: Expr; readonly pos: Pos };

export type BinaryOp = "+" | "-" | "*" | "/";

/** A call argument; named arguments are attributes (ops) or parameters (blocks). */
export interface Arg {
  readonly name?: Ident;
  readonly value: Expr;
}

/** `x[i]` picks index i (dropping the axis); `x[a:b]` slices (either bound may be absent). */
export type SliceItem =
  | { readonly k: "at"; readonly e: Expr }
  | { readonly k: "range"; readonly start?: Expr; readonly end?: Expr; readonly pos: Pos };

/** `f32[B, N@token, dim]`; dims are expressions over constants and symbols. */
export interface TypeExpr {
  readonly dtype: Ident;
  readonly dims: readonly { readonly e: Expr; readonly axis?: Ident }[];
  readonly pos: Pos;
}

export type Stmt =
  | { readonly k: "assign"; readonly targets: readonly Ident[]; readonly value: Expr }
  | { readonly k: "param"; readonly name: Ident; readonly type: TypeExpr; readonly init: Expr }
  | {
      readonly k: "repeat";
      readonly count: Expr;
      readonly var: Ident;
      readonly body: readonly Stmt[];
      readonly pos: Pos;
    }
  | { readonly k: "return"; readonly value: Expr; readonly pos: Pos };

/** A block parameter: a tensor (no kind) or a compile-time `int`/`float`. */
export interface BlockParam {
  readonly name: Ident;
  readonly kind?: Ident;
}

export type Item =
  | { readonly k: "const"; readonly name: Ident; readonly value: Expr }
  | {
      readonly k: "block";
      readonly name: Ident;
      readonly params: readonly BlockParam[];
      readonly body: readonly Stmt[];
      readonly end: Pos;
    }
  | {
      readonly k: "model";
      readonly name: Ident;
      readonly inputs: readonly { readonly name: Ident; readonly type: TypeExpr }[];
      readonly outputs: readonly { readonly name: Ident; readonly type?: TypeExpr }[];
      readonly body: readonly Stmt[];
    }
  | { readonly k: "policy"; readonly name: Ident; readonly rules: readonly PolicyRule[] };

/**
 * One selector segment: a name (`blocks`), an index (`3`) or `*` (any one segment); `range`
 * (`blocks[2..11]`, inclusive; `blocks[4]` is 4..4) requires the next scope segment to be an
 * index in it.
 */
export interface SelectorSegment {
  readonly k: "name" | "index" | "any";
  readonly text: string;
  readonly range?: { readonly lo: number; readonly hi: number };
  readonly pos: Pos;
}

/** `SELECTOR: DIRECTIVE(args)` inside a policy. */
export interface PolicyRule {
  readonly selector: readonly SelectorSegment[];
  readonly selectorPos: Pos;
  readonly directive: Ident;
  readonly args: readonly Arg[];
  readonly pos: Pos;
}

/** A `// ...` comment (text includes the slashes), for `tokr fmt`. */
export interface Comment {
  readonly text: string;
  readonly line: number;
}

export interface Program {
  readonly items: readonly Item[];
  readonly comments?: readonly Comment[];
}
