/** Learning curves as standalone SVG line charts and heatmaps (no dependencies), for run folders and `report`. */

export interface Series {
  name: string;
  points: readonly [number, number][];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/** An SVG's opening: the root element, a white background and the title centred at `titleX`. */
function svgOpening(width: number, height: number, titleX: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${titleX}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
  ];
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Round tick values spanning [min, max]. */
function ticks(min: number, max: number, count = 5): number[] {
  if (min === max) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function formatTick(v: number): string {
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0)
    ? v.toExponential(1)
    : String(Number(v.toPrecision(4)));
}

export function lineChart(series: readonly Series[], options: ChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  const margin = { left: 64, right: 160, top: 36, bottom: 48 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  let [xMin, xMax] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [yMin, yMax] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (xMin === xMax) [xMin, xMax] = [xMin - 1, xMax + 1];
  if (yMin === yMax) [yMin, yMax] = [yMin - 1, yMax + 1];
  const px = (x: number) => margin.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const py = (y: number) => margin.top + plotH - ((y - yMin) / (yMax - yMin)) * plotH;
  const parts = svgOpening(width, height, margin.left + plotW / 2, options.title);
  for (const t of ticks(yMin, yMax)) {
    const y = py(t).toFixed(1);
    parts.push(
      `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y}" y2="${y}" stroke="#e0e0e0"/>`,
    );
    parts.push(
      `<text x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${
        formatTick(t)
      }</text>`,
    );
  }
  for (const t of ticks(xMin, xMax)) {
    const x = px(t).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${x}" y="${margin.top + plotH + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  parts.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 10}" text-anchor="middle">${
      escapeXml(options.xLabel)
    }</text>`,
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${
      escapeXml(options.yLabel)
    }</text>`,
  );
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (points.length > 1) {
      const d = points.map(([x, y], k) => `${k ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join("");
      parts.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.5"/>`);
    }
    for (const [x, y] of points.length <= 50 ? points : []) {
      parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="${colour}"/>`);
    }
    const ly = margin.top + 8 + i * 18;
    parts.push(
      `<line x1="${width - margin.right + 12}" x2="${
        width - margin.right + 32
      }" y1="${ly}" y2="${ly}" stroke="${colour}" stroke-width="2"/>`,
      `<text x="${width - margin.right + 38}" y="${ly}" dominant-baseline="middle">${
        escapeXml(s.name)
      }</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** Viridis at nine even steps, dark (low) to yellow (high): ordered in lightness, readable in greyscale. */
const VIRIDIS = [
  [68, 1, 84],
  [71, 45, 123],
  [59, 82, 139],
  [44, 114, 142],
  [33, 145, 140],
  [40, 174, 128],
  [94, 201, 98],
  [173, 220, 48],
  [253, 231, 37],
];

/** The colour of `t` in [0, 1] on the viridis scale, and whether text on it should be dark. */
function viridis(t: number): { fill: string; darkText: boolean } {
  const at = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(at));
  const f = at - i;
  const [r, g, b] = VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
  return { fill: `rgb(${r},${g},${b})`, darkText: t > 0.55 };
}

export interface HeatmapOptions {
  title: string;
  xLabel: string;
  /** What the colour shows (the colour bar's label). */
  valueLabel: string;
}

/**
 * A rows x columns grid of coloured cells (e.g. layer x epoch), one `<g class="row">` per row with its
 * label; `values[row][column]`, NaN where there is none (drawn grey). The colour runs from 0 to the
 * largest value; cells wide enough carry their value as text, every cell its value as a tooltip.
 */
export function heatmap(
  rows: readonly string[],
  columns: readonly number[],
  values: readonly (readonly number[])[],
  options: HeatmapOptions,
): string {
  const cellH = 16;
  const cellW = columns.length ? Math.min(48, Math.max(2, 480 / columns.length)) : 48;
  const labelW = 12 + 7 * Math.max(4, ...rows.map((r) => r.length));
  const margin = { left: labelW, right: 90, top: 36, bottom: 48 };
  const plotW = cellW * Math.max(1, columns.length);
  const plotH = cellH * Math.max(1, rows.length);
  // The colour bar is at least tall enough for its label.
  const barH = Math.max(plotH, 8 * options.valueLabel.length);
  const width = margin.left + plotW + margin.right;
  const height = margin.top + Math.max(plotH, barH) + margin.bottom;
  const finite = values.flat().filter(Number.isFinite);
  const max = Math.max(0, ...finite) || 1;
  const decimals = max >= 10 ? 0 : max >= 1 ? 2 : 3;
  const parts = svgOpening(width, height, margin.left + plotW / 2, options.title);
  if (rows.length === 0) {
    parts.push(
      `<text x="${margin.left + plotW / 2}" y="${
        margin.top + cellH / 2
      }" text-anchor="middle" dominant-baseline="middle">no values recorded</text>`,
    );
  }
  rows.forEach((name, r) => {
    const y = margin.top + r * cellH;
    parts.push(
      `<g class="row" data-name="${escapeXml(name)}">`,
      `<text x="${margin.left - 6}" y="${y + cellH / 2}" text-anchor="end" dominant-baseline="middle">${
        escapeXml(name)
      }</text>`,
    );
    columns.forEach((column, c) => {
      const value = values[r]?.[c] ?? NaN;
      const x = margin.left + c * cellW;
      const known = Number.isFinite(value);
      const colour = known ? viridis(value / max) : { fill: "#e8e8e8", darkText: true };
      const tip = `${name}, ${options.xLabel} ${column}: ${known ? value.toPrecision(4) : "none"}`;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y}" width="${
          cellW.toFixed(1)
        }" height="${cellH}" fill="${colour.fill}"><title>${escapeXml(tip)}</title></rect>`,
      );
      if (known && cellW >= 34) {
        parts.push(
          `<text x="${(x + cellW / 2).toFixed(1)}" y="${
            y + cellH / 2
          }" text-anchor="middle" dominant-baseline="middle" font-size="10" fill="${
            colour.darkText ? "black" : "white"
          }">${value.toFixed(decimals)}</text>`,
        );
      }
    });
    parts.push(`</g>`);
  });
  // Column ticks at round values that are columns, centred on their cells.
  const span = columns.length
    ? ticks(Math.min(...columns), Math.max(...columns), Math.min(10, columns.length))
    : [];
  for (const t of span) {
    const c = columns.indexOf(t);
    if (c < 0) continue;
    const x = (margin.left + (c + 0.5) * cellW).toFixed(1);
    const y = margin.top + plotH;
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${y}" y2="${y + 4}" stroke="#333"/>`,
      `<text x="${x}" y="${y + 16}" text-anchor="middle">${formatTick(t)}</text>`,
    );
  }
  parts.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${margin.left + plotW / 2}" y="${margin.top + plotH + 36}" text-anchor="middle">${
      escapeXml(options.xLabel)
    }</text>`,
  );
  // The colour bar: the scale from 0 (bottom) to the largest value (top).
  const barX = margin.left + plotW + 16;
  parts.push(`<defs><linearGradient id="scale" x1="0" y1="1" x2="0" y2="0">`);
  VIRIDIS.forEach((_, i) => {
    const t = i / (VIRIDIS.length - 1);
    parts.push(`<stop offset="${t.toFixed(3)}" stop-color="${viridis(t).fill}"/>`);
  });
  parts.push(
    `</linearGradient></defs>`,
    `<rect x="${barX}" y="${margin.top}" width="14" height="${barH}" fill="url(#scale)" stroke="#333"/>`,
  );
  for (const t of ticks(0, max, 4)) {
    const y = (margin.top + barH - (t / max) * barH).toFixed(1);
    parts.push(
      `<line x1="${barX + 14}" x2="${barX + 18}" y1="${y}" y2="${y}" stroke="#333"/>`,
      `<text x="${barX + 21}" y="${y}" dominant-baseline="middle">${formatTick(t)}</text>`,
    );
  }
  parts.push(
    `<text transform="translate(${barX + 58} ${margin.top + barH / 2}) rotate(90)" text-anchor="middle">${
      escapeXml(options.valueLabel)
    }</text>`,
    "</svg>",
  );
  return parts.join("\n");
}
