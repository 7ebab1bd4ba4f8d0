import type { Dim } from "../ir/sym.js";
import { printDim } from "../ir/sym.js";
import type { GraphReport, LayerComparison } from "../report/layers.js";

/**
 * The HTML report of `tokr inspect --html FILE`: one self-contained page (inline CSS and SVG, no
 * scripts, nothing fetched) with a table and two plots, tokens and FLOPs per layer, before and after.
 */

export interface HtmlReportInput {
  readonly title: string;
  readonly layers: readonly LayerComparison[];
  readonly before: GraphReport;
  /** Absent without a policy: only the model's own numbers. */
  readonly after?: GraphReport;
  /** A count as a plain number (unbound symbols set to 1). */
  readonly value: (d: Dim) => number;
  readonly notes: readonly string[];
}

const esc = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const COLORS = { before: "#8a8f98", after: "#1f6feb" } as const;

interface Series {
  readonly name: "before" | "after";
  readonly values: readonly (number | null)[];
}

/** A line plot with one circle per layer and series (null values are skipped). */
export function svgPlot(
  title: string,
  labels: readonly string[],
  series: readonly Series[],
  unit: string,
): string {
  const w = 720;
  const h = 260;
  const m = { l: 70, r: 20, t: 30, b: 60 };
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = Math.max(1, ...all);
  const n = labels.length;
  const x = (i: number): number => m.l + (n <= 1 ? (w - m.l - m.r) / 2 : (i * (w - m.l - m.r)) / (n - 1));
  const y = (v: number): number => h - m.b - (v / max) * (h - m.t - m.b);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">`,
  );
  parts.push(`<title>${esc(title)}</title>`);
  parts.push(`<text x="${m.l}" y="18" class="ttl">${esc(title)}</text>`);
  parts.push(`<line x1="${m.l}" y1="${h - m.b}" x2="${w - m.r}" y2="${h - m.b}" stroke="#999"/>`);
  parts.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${h - m.b}" stroke="#999"/>`);
  for (const f of [0, 0.5, 1])
    parts.push(
      `<text x="${m.l - 6}" y="${y(max * f) + 4}" text-anchor="end" class="ax">${esc(fmt(max * f))}${f === 1 ? ` ${esc(unit)}` : ""}</text>`,
    );
  labels.forEach((l, i) =>
    parts.push(
      `<text x="${x(i)}" y="${h - m.b + 14}" text-anchor="end" transform="rotate(-35 ${x(i)} ${h - m.b + 14})" class="ax">${esc(l)}</text>`,
    ),
  );
  for (const s of series) {
    const pts = s.values.flatMap((v, i) => (v === null ? [] : [[x(i), y(v), v, i] as const]));
    const color = COLORS[s.name];
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ")}"/>`,
    );
    for (const [a, b, v, i] of pts)
      parts.push(
        `<circle class="pt ${s.name}" data-layer="${esc(labels[i])}" data-value="${v}" cx="${a.toFixed(1)}" cy="${b.toFixed(1)}" r="3.5" fill="${color}"><title>${esc(labels[i])} ${s.name}: ${esc(fmt(v))}</title></circle>`,
      );
  }
  series.forEach((s, k) =>
    parts.push(
      `<text x="${w - m.r - 150 + k * 75}" y="18" fill="${COLORS[s.name]}" class="ax">&#9679; ${s.name}</text>`,
    ),
  );
  parts.push("</svg>");
  return parts.join("\n");
}

/** 1234567 -> "1.23M". */
function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return String(Math.round(v * 100) / 100);
}

export function renderHtmlReport(r: HtmlReportInput): string {
  const labels = r.layers.map((l) => l.layer);
  const tok = (which: "before" | "after"): (number | null)[] =>
    r.layers.map((l) => {
      const row = l[which];
      return row && row.tokens !== null ? r.value(row.tokens) : null;
    });
  const fl = (which: "before" | "after"): (number | null)[] =>
    r.layers.map((l) => (l[which] ? r.value(l[which]!.flops) : null));
  const series = (f: (w: "before" | "after") => (number | null)[]): Series[] =>
    r.after
      ? [
          { name: "before", values: f("before") },
          { name: "after", values: f("after") },
        ]
      : [{ name: "before", values: f("before") }];
  const cell = (d: Dim | null | undefined): string =>
    d === null || d === undefined ? "-" : esc(printDim(d));
  const rows = r.layers
    .map(
      (l) =>
        `<tr><td>${esc(l.layer)}</td><td>${cell(l.before?.tokens)}</td>${r.after ? `<td>${cell(l.after?.tokens)}</td>` : ""}<td>${cell(l.before?.flops)}</td>${r.after ? `<td>${cell(l.after?.flops)}</td>` : ""}</tr>`,
    )
    .join("\n");
  const head = r.after
    ? "<tr><th>layer</th><th>tokens before</th><th>tokens after</th><th>FLOPs before</th><th>FLOPs after</th></tr>"
    : "<tr><th>layer</th><th>tokens</th><th>FLOPs</th></tr>";
  const total = r.after
    ? `<p>Total FLOPs: ${cell(r.before.totalFlops)} &rarr; ${cell(r.after.totalFlops)} (ratio ${(r.value(r.after.totalFlops) / r.value(r.before.totalFlops)).toFixed(3)})</p>`
    : `<p>Total FLOPs: ${cell(r.before.totalFlops)}</p>`;
  const mem = (g: GraphReport): string =>
    g.peakActivationBytes === null ? "unbound" : `${g.peakActivationBytes} bytes`;
  const peak = `<p>Peak activation memory: ${esc(mem(r.before))}${r.after ? ` &rarr; ${esc(mem(r.after))}` : ""}</p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child{text-align:left}
.ttl{font-weight:600;font-size:14px}.ax{font-size:11px;fill:#555}
</style></head><body>
<h1>${esc(r.title)}</h1>
${total}
${peak}
${r.notes.map((n) => `<p class="note">${esc(n)}</p>`).join("\n")}
<figure id="tokens">${svgPlot("Tokens per layer (attention keys)", labels, series(tok), "tokens")}</figure>
<figure id="flops">${svgPlot("FLOPs per layer", labels, series(fl), "FLOPs")}</figure>
<table>${head}
${rows}
</table>
</body></html>
`;
}
