// The frontier plot of bench/README.md: top-1 agreement with the unreduced model vs FLOPs ratio, one point
// per policy; constant-r bipartite ToMe as a line, the other policies as points plus their upper frontier.
// Points are numbered (legend on the right: many policies share a FLOPs band) and carry a ±1 standard
// error bar of the agreement, sqrt(a (1 - a) / n).

/** One policy's point. */
export interface FrontierPoint {
  readonly name: string;
  /** FLOPs ratio (reduced / unreduced). */
  readonly f: number;
  /** Agreement in percent. */
  readonly a: number;
  /** Constant-r bipartite ToMe (the reference method of the frontier goal). */
  readonly c: boolean;
}

/** Constant-r bipartite ToMe: the reference method the frontier goal compares against. */
export const isConstantR = (name: string): boolean => /^tome-r\d+$/.test(name);

/** The SVG text of the plot; `n` is the number of images the agreements were measured on. */
export function frontierSvg(pts: readonly FrontierPoint[], n: number): string {
  const [W, H, L, R, T, B] = [1000, 520, 70, 300, 40, 60];
  // The y axis starts one step below the least faithful point (steps of 1% below a 10-point range, else 2%).
  const lowest = Math.min(...pts.map((p) => p.a));
  const step = lowest >= 92 ? 1 : 2;
  const aMin = Math.min(100 - step, Math.floor(lowest / step) * step - step);
  const x = (f: number): number => L + ((f - 0.2) / 0.8) * (W - L - R);
  const y = (a: number): number => T + ((100 - a) / (100 - aMin)) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${(W - R) / 2}" y="20" text-anchor="middle" font-size="14">Fashion-MNIST ViT: top-1 agreement with the unreduced model vs FLOPs (N=${n})</text>`,
  ];
  for (let f = 0.2; f <= 1.0001; f += 0.1) {
    out.push(`<line x1="${x(f)}" y1="${T}" x2="${x(f)}" y2="${H - B}" stroke="#eee"/>`);
    out.push(`<text x="${x(f)}" y="${H - B + 16}" text-anchor="middle">${f.toFixed(1)}</text>`);
  }
  for (let a = aMin; a <= 100; a += step) {
    out.push(`<line x1="${L}" y1="${y(a)}" x2="${W - R}" y2="${y(a)}" stroke="#eee"/>`);
    out.push(`<text x="${L - 6}" y="${y(a) + 4}" text-anchor="end">${a}%</text>`);
  }
  out.push(
    `<text x="${(L + W - R) / 2}" y="${H - 20}" text-anchor="middle">FLOPs ratio (reduced / unreduced)</text>`,
    `<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})">agreement with unreduced top-1</text>`,
  );
  const line = (ps: { f: number; a: number }[], color: string, dash = ""): void => {
    if (ps.length > 1)
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash} points="${ps.map((p) => `${x(p.f).toFixed(1)},${y(p.a).toFixed(1)}`).join(" ")}"/>`,
      );
  };
  line(
    pts.filter((p) => p.c).sort((a, b) => a.f - b.f),
    "#1f77b4",
  );
  // Upper frontier of the other policies: points not beaten by a cheaper, more faithful one.
  const others = pts.filter((p) => !p.c).sort((a, b) => a.f - b.f);
  const front = others.filter((p) => !others.some((q) => q.f <= p.f && q.a > p.a));
  line(front, "#ff7f0e", 'stroke-dasharray="5,3"');
  const numbered = [...pts].sort((a, b) => b.f - a.f || b.a - a.a);
  numbered.forEach((p, i) => {
    const color = p.c ? "#1f77b4" : "#ff7f0e";
    const se = 100 * Math.sqrt(((p.a / 100) * (1 - p.a / 100)) / n);
    const [cx, cy] = [x(p.f).toFixed(1), y(p.a).toFixed(1)];
    out.push(
      `<line x1="${cx}" y1="${y(Math.min(100, p.a + se)).toFixed(1)}" x2="${cx}" y2="${y(p.a - se).toFixed(1)}" stroke="${color}" opacity="0.5"/>`,
      `<circle cx="${cx}" cy="${cy}" r="4" fill="${color}"/>`,
      `<text x="${(x(p.f) + 5).toFixed(1)}" y="${(y(p.a) - 5).toFixed(1)}" fill="#333" font-size="9">${i + 1}</text>`,
      `<text x="${W - R + 10}" y="${T + 10 + 14 * i}" fill="${color}">${i + 1}. ${p.name} (${p.f.toFixed(3)}, ${p.a.toFixed(2)}%)</text>`,
    );
  });
  out.push(
    `<rect x="${L + 10}" y="${H - B - 66}" width="12" height="3" fill="#1f77b4"/><text x="${L + 28}" y="${H - B - 62}">ToMe bipartite, constant r</text>`,
    `<rect x="${L + 10}" y="${H - B - 48}" width="12" height="3" fill="#ff7f0e"/><text x="${L + 28}" y="${H - B - 44}">other policies (dashed: their frontier)</text>`,
    `<text x="${L + 10}" y="${H - B - 8}">bars: ±1 standard error of the agreement (n = ${n})</text>`,
    "</svg>",
  );
  return out.join("\n") + "\n";
}
