import { isDType } from "./dtype.js";
import { type Dim, type SymExpr, isSym } from "./sym.js";

/** Attribute values: scalars, symbolic dims, and lists of them. */
export type AttrValue =
  number | boolean | string | SymExpr | readonly (number | SymExpr)[] | readonly string[];
export type Attrs = Readonly<Record<string, AttrValue>>;

export type AttrKind =
  "int" | "float" | "bool" | "string" | "dim" | "ints" | "floats" | "dims" | "strings" | "dtype";

export interface AttrSpec {
  readonly kind: AttrKind;
  /** Value used when the attribute is absent; absent with no default means required. */
  readonly default?: AttrValue;
  readonly optional?: boolean;
  /** Allowed values for `string` attributes. */
  readonly oneOf?: readonly string[];
  readonly doc?: string;
}

export type AttrSchema = Readonly<Record<string, AttrSpec>>;

function isIntLike(v: unknown): boolean {
  return typeof v === "number" && Number.isInteger(v);
}

function kindMatches(kind: AttrKind, v: AttrValue): boolean {
  switch (kind) {
    case "int":
      return isIntLike(v);
    case "float":
      return typeof v === "number";
    case "bool":
      return typeof v === "boolean";
    case "string":
      return typeof v === "string";
    case "dtype":
      return typeof v === "string" && isDType(v);
    case "dim":
      return isIntLike(v) || (typeof v === "object" && !Array.isArray(v) && isSym(v as Dim));
    case "ints":
      return Array.isArray(v) && v.every(isIntLike);
    case "floats":
      return Array.isArray(v) && v.every((x) => typeof x === "number");
    case "dims":
      return Array.isArray(v) && v.every((x) => isIntLike(x) || (typeof x === "object" && x !== null));
    case "strings":
      return Array.isArray(v) && v.every((x) => typeof x === "string");
  }
}

/** Checks attributes against a schema; returns one message per problem. */
export function checkAttrs(schema: AttrSchema, attrs: Attrs): string[] {
  const errors: string[] = [];
  for (const [name, v] of Object.entries(attrs)) {
    const spec = schema[name];
    if (!spec) {
      const known = Object.keys(schema);
      errors.push(
        `unknown attribute '${name}'${known.length ? ` (expected one of: ${known.join(", ")})` : ""}`,
      );
      continue;
    }
    if (!kindMatches(spec.kind, v))
      errors.push(`attribute '${name}' must be ${spec.kind}, got ${JSON.stringify(v)}`);
    else if (spec.oneOf && !spec.oneOf.includes(v as string))
      errors.push(
        `attribute '${name}' must be one of ${spec.oneOf.map((s) => `"${s}"`).join(", ")}, got "${String(v)}"`,
      );
  }
  for (const [name, spec] of Object.entries(schema)) {
    if (!(name in attrs) && spec.default === undefined && !spec.optional)
      errors.push(`missing attribute '${name}'`);
  }
  return errors;
}

/** Attribute lookup with the schema default; the caller names the expected TS type. */
export function attr<T extends AttrValue>(schema: AttrSchema, attrs: Attrs, name: string): T {
  const v = attrs[name] ?? schema[name]?.default;
  if (v === undefined) throw new Error(`attribute '${name}' is not set and has no default`);
  return v as T;
}

export function optAttr<T extends AttrValue>(schema: AttrSchema, attrs: Attrs, name: string): T | undefined {
  return (attrs[name] ?? schema[name]?.default) as T | undefined;
}
