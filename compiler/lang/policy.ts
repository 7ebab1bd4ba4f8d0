import type { AttrValue } from "../ir/attrs.js";
import type { Graph, Node } from "../ir/graph.js";
import { axisOf } from "../ir/types.js";
import type { Item, Pos, Program, SelectorSegment } from "../../grammar/ast.js";
import { editDistance, type LangDiagnostic } from "../../grammar/diagnostics.js";
import { selectorText } from "../../grammar/selector.js";
import { checkDirective, type CheckedDirective, DIRECTIVES } from "./policy-schema.js";

/**
 * Policies (docs/language.md, Policies): selectors are matched against the node scopes of a
 * lowered graph, composition is checked, and each directive becomes one IR policy object
 * `@NAME.I` (I = the rule's index in the policy) referenced by its site nodes. The graph itself is
 * not rewritten; the reduction passes (issue #6) interpret the policies.
 */

export type PolicyItem = Extract<Item, { k: "policy" }>;

type Matcher =
  | { readonly k: "name"; readonly text: string }
  | { readonly k: "any" }
  | { readonly k: "range"; readonly lo: number; readonly hi: number };

function matchers(sel: readonly SelectorSegment[]): Matcher[] {
  const out: Matcher[] = [];
  for (const s of sel) {
    out.push(s.k === "any" ? { k: "any" } : { k: "name", text: s.text });
    if (s.range) out.push({ k: "range", lo: s.range.lo, hi: s.range.hi });
  }
  return out;
}

function matches(m: Matcher, seg: string): boolean {
  switch (m.k) {
    case "name":
      return m.text === seg;
    case "any":
      return true;
    case "range": {
      if (!/^\d+$/.test(seg)) return false;
      const i = Number(seg);
      return i >= m.lo && i <= m.hi;
    }
  }
}

/** The scopes a selector picks: the distinct scope prefixes it matches, in graph order. */
export function matchSites(g: Graph, sel: readonly SelectorSegment[]): string[] {
  const ms = matchers(sel);
  const out = new Set<string>();
  for (const n of g.nodes) {
    const segs = n.scope?.split(".") ?? [];
    if (segs.length >= ms.length && ms.every((m, i) => matches(m, segs[i])))
      out.add(segs.slice(0, ms.length).join("."));
  }
  return [...out];
}

/** Scope prefixes of the selector's depth, nearest to its text first (for the "no site" error). */
function nearScopes(g: Graph, sel: readonly SelectorSegment[]): string[] {
  const depth = matchers(sel).length;
  const text = selectorText(sel).replace(/\[(\d+)(\.\.\d+)?\]/g, ".$1");
  const all = new Set<string>();
  for (const n of g.nodes) {
    const segs = n.scope?.split(".") ?? [];
    if (segs.length >= depth) all.add(segs.slice(0, depth).join("."));
  }
  return [...all].sort((a, b) => editDistance(text, a) - editDistance(text, b)).slice(0, 3);
}

function inScope(n: Node, scope: string): boolean {
  return n.scope === scope || (n.scope?.startsWith(scope + ".") ?? false);
}

/** Token count entering a node when it is static: the `token` axis (else axis 1) of input 0. */
function staticTokens(n: Node): number | undefined {
  const t = n.inputs[0]?.type;
  if (!t) return undefined;
  const ax = axisOf(t, "token") >= 0 ? axisOf(t, "token") : t.dims.length >= 2 ? 1 : -1;
  const d = ax >= 0 ? t.dims[ax] : undefined;
  return typeof d === "number" ? d : undefined;
}

interface Claim {
  readonly node: Node;
  readonly scope: string;
  readonly dir: CheckedDirective;
  readonly pos: Pos;
  /** Index of this site among the directive's sites (for merge schedules). */
  readonly siteIndex: number;
}

const at = (p: Pos): string => `${p.line}:${p.col}`;

/** A prune with a threshold: its token count is data-dependent, bounded by keep/budget. */
const isAdaptive = (c: Claim): boolean => c.dir.name === "prune" && c.dir.params.threshold !== undefined;

/**
 * Checks every policy of `program` against `g` and attaches them (g.policies and node.policy).
 * Returns the diagnostics; on any, the graph may be partially annotated and should be dropped.
 */
export function applyPolicies(g: Graph, program: Program, file: string): LangDiagnostic[] {
  const diags: LangDiagnostic[] = [];
  const seen = new Map<string, Pos>();
  const claims = new Map<Node, Claim>();
  for (const it of program.items) {
    if (it.k !== "policy") continue;
    const prev = seen.get(it.name.name);
    if (prev) {
      diags.push({ pos: it.name.pos, message: `policy '${it.name.name}' is already defined at ${at(prev)}` });
      continue;
    }
    seen.set(it.name.name, it.name.pos);
    applyPolicy(g, it, file, diags, claims);
  }
  if (!diags.length) checkTokenCounts(g, claims, diags);
  return diags.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
}

/** Validates only the directives' parameters (a policy file checked without a model). */
export function checkPolicyParams(program: Program): LangDiagnostic[] {
  const diags: LangDiagnostic[] = [];
  for (const it of program.items)
    if (it.k === "policy") for (const r of it.rules) checkDirective(r.directive, r.args, diags);
  return diags;
}

/**
 * One policy: each rule's directive is validated, its selector matched (no match is an error
 * listing the nearest scopes), and its site nodes claimed (a node claimed twice is a conflict
 * reported with both locations). Valid rules become IR policies `@NAME.I`.
 */
export function applyPolicy(
  g: Graph,
  policy: PolicyItem,
  file: string,
  diags: LangDiagnostic[],
  claims = new Map<Node, Claim>(),
): void {
  policy.rules.forEach((rule, i) => {
    const dir = checkDirective(rule.directive, rule.args, diags);
    if (!dir) return;
    const sel = selectorText(rule.selector);
    const sites = matchSites(g, rule.selector);
    if (!sites.length) {
      const near = nearScopes(g, rule.selector);
      diags.push({
        pos: rule.selectorPos,
        message: `selector '${sel}' matches no scope of the model`,
        ...(near.length ? { hint: `scopes at this depth: ${near.join(", ")}` } : {}),
      });
      return;
    }
    const sched = dir.params.schedule;
    if (Array.isArray(sched) && sched.length !== sites.length) {
      diags.push({
        pos: dir.argPos.get("schedule")!,
        message: `merge schedule has ${sched.length} entries but '${sel}' matches ${sites.length} sites`,
      });
      return;
    }
    const name = `${policy.name.name}.${i}`;
    const spec = DIRECTIVES[dir.name];
    const nodes: Node[] = [];
    for (const scope of sites) {
      const inside = g.nodes.filter((n) => inScope(n, scope));
      const node = spec.site === "attention" ? inside.find((n) => n.op === "attention") : inside[0];
      if (!node) {
        diags.push({
          pos: rule.selectorPos,
          message: `${dir.name} needs an attention node, but scope '${scope}' has none`,
        });
        continue;
      }
      const other = claims.get(node);
      if (other) {
        diags.push({
          pos: rule.directive.pos,
          message:
            `${dir.name} conflicts with ${other.dir.name} at ${at(other.pos)}: ` +
            `both apply to the site of scope '${scope}'`,
        });
        continue;
      }
      if (node.policy !== undefined) {
        diags.push({
          pos: rule.directive.pos,
          message: `the site of scope '${scope}' already has policy @${node.policy}`,
        });
        continue;
      }
      claims.set(node, { node, scope, dir, pos: rule.directive.pos, siteIndex: nodes.length });
      nodes.push(node);
    }
    if (nodes.length !== sites.length) return;
    const params: Record<string, AttrValue> = { kind: dir.name, selector: sel, sites, ...dir.params };
    g.policies.set(name, { name, params, loc: { file, line: rule.pos.line, col: rule.pos.col } });
    for (const n of nodes) g.setPolicy(n, name);
  });
}

/**
 * Follows the token-reducing sites in graph order (one token path) where the token count is
 * static: merge may remove at most half of the tokens left (bipartite matching), and a prune
 * budget may not exceed the tokens left, naming the earlier reduction's location. An adaptive
 * prune leaves at most its capacity; only adaptive prunes may follow it.
 */
function checkTokenCounts(g: Graph, claims: ReadonlyMap<Node, Claim>, diags: LangDiagnostic[]): void {
  let left: number | undefined;
  let by: Claim | undefined;
  let adaptive: Claim | undefined;
  const after = (): string =>
    by
      ? ` after ${by.dir.name} at ${at(by.pos)}${isAdaptive(by) ? " (the adaptive prune's capacity)" : ""}`
      : "";
  for (const n of g.nodes) {
    const c = claims.get(n);
    if (!c || !DIRECTIVES[c.dir.name].reduces) continue;
    // Rows past an example's count are padding: merge and pool have no rule to skip them.
    if (adaptive && (c.dir.name === "merge" || c.dir.name === "pool")) {
      diags.push({
        pos: c.pos,
        message:
          `${c.dir.name} at scope '${c.scope}' cannot follow the adaptive prune at ${at(adaptive.pos)} ` +
          `(threshold: a data-dependent token count); only an adaptive prune may come after it`,
      });
      return;
    }
    // A static count pads an example that has fewer tokens with zero rows, which nothing masks later.
    if (adaptive && c.dir.name === "prune" && !isAdaptive(c)) {
      diags.push({
        pos: c.pos,
        message:
          `a static prune at scope '${c.scope}' cannot follow the adaptive prune at ${at(adaptive.pos)}: ` +
          `an example with fewer tokens than it keeps would get zero rows that later layers read as tokens`,
        hint: "give it a 'threshold' too (its keep/budget is then the most it keeps)",
      });
      return;
    }
    if (isAdaptive(c)) adaptive ??= c;
    const t = left ?? staticTokens(n);
    if (t === undefined) continue;
    const p = c.dir.params;
    switch (c.dir.name) {
      case "merge": {
        const r = typeof p.r === "number" ? p.r : (p.schedule as readonly number[])[c.siteIndex];
        if (2 * r > t) {
          diags.push({
            pos: c.dir.argPos.get(typeof p.r === "number" ? "r" : "schedule")!,
            message: `merge r = ${r} at scope '${c.scope}' needs ${2 * r} tokens, but ${t} are left${after()}`,
          });
          return;
        }
        left = t - r;
        break;
      }
      case "prune":
        if (typeof p.budget === "number") {
          if (p.budget > t) {
            diags.push({
              pos: c.dir.argPos.get("budget")!,
              message: `prune budget ${p.budget} at scope '${c.scope}' exceeds the ${t} tokens left${after()}`,
            });
            return;
          }
          left = p.budget;
        } else left = Math.ceil(t * (p.keep as number));
        break;
      case "pool": {
        const s = p.size as number;
        left = Math.ceil(t / (p.mode === "spatial" ? s * s : s));
        break;
      }
      case "kv":
        break;
    }
    by = c;
  }
}
