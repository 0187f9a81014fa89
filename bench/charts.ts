/**
 * Horizontal bar charts as plain SVG text, no dependencies: one group of
 * bars per contender, one bar per series (throughput has one series,
 * ping-pong has p50 and p99). Linear scale from zero, so lengths compare
 * honestly; each bar carries its value as text because the short ones can be
 * a few pixels long.
 */

export interface ChartBar {
  readonly value: number;
  /** Printed after the bar. */
  readonly text: string;
}

export interface ChartGroup {
  readonly label: string;
  /** One bar per series, in series order; a missing value draws nothing but its text. */
  readonly bars: readonly (ChartBar | undefined)[];
  /** Draw this group in the highlight colour (postern). */
  readonly highlight?: boolean;
}

export interface Chart {
  readonly title: string;
  /** E.g. "records per second, longer is better". */
  readonly subtitle: string;
  /** Series names for the legend; a single series gets no legend. */
  readonly series: readonly string[];
  readonly groups: readonly ChartGroup[];
}

const WIDTH = 760;
const LABEL_W = 150;
const TEXT_W = 150;
const PLOT_W = WIDTH - LABEL_W - TEXT_W - 20;
const BAR_H = 16;
const BAR_GAP = 3;
const GROUP_GAP = 12;
const TOP = 58;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
/** Series colours: [highlighted, other] per series. */
const COLOURS: readonly (readonly [string, string])[] = [
  ['#2563eb', '#64748b'],
  ['#93c5fd', '#cbd5e1'],
];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function barChart(chart: Chart): string {
  const seriesCount = Math.max(1, chart.series.length);
  const groupH = seriesCount * BAR_H + (seriesCount - 1) * BAR_GAP;
  const legendH = chart.series.length > 1 ? 22 : 0;
  const top = TOP + legendH;
  const height = top + chart.groups.length * (groupH + GROUP_GAP) + 10;
  const maxValue = Math.max(
    ...chart.groups.flatMap((g) => g.bars.map((b) => (b && Number.isFinite(b.value) ? b.value : 0))),
    Number.MIN_VALUE,
  );
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ${FONT} font-size="12" role="img">`,
    `<title>${esc(`${chart.title} (${chart.subtitle})`)}</title>`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="600" fill="#0f172a">${esc(chart.title)}</text>`,
    `<text x="10" y="42" fill="#475569">${esc(chart.subtitle)}</text>`,
  );
  if (chart.series.length > 1) {
    let x = LABEL_W;
    chart.series.forEach((name, s) => {
      out.push(
        `<rect x="${x}" y="${TOP - 8}" width="12" height="12" fill="${COLOURS[s % COLOURS.length]![0]}"/>`,
        `<text x="${x + 16}" y="${TOP + 2}" fill="#334155">${esc(name)}</text>`,
      );
      x += 30 + name.length * 7;
    });
  }
  out.push(`<line x1="${LABEL_W}" y1="${top - 4}" x2="${LABEL_W}" y2="${height - 8}" stroke="#94a3b8"/>`);
  chart.groups.forEach((g, gi) => {
    const y0 = top + gi * (groupH + GROUP_GAP);
    out.push(
      `<text x="${LABEL_W - 8}" y="${y0 + groupH / 2 + 4}" text-anchor="end" fill="#0f172a"${g.highlight ? ' font-weight="600"' : ''}>${esc(g.label)}</text>`,
    );
    g.bars.forEach((bar, s) => {
      if (!bar) return;
      const y = y0 + s * (BAR_H + BAR_GAP);
      const w =
        Number.isFinite(bar.value) && bar.value > 0 ? Math.max(1, (bar.value / maxValue) * PLOT_W) : 0;
      const colour = COLOURS[s % COLOURS.length]![g.highlight ? 0 : 1];
      if (w > 0)
        out.push(
          `<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${colour}"/>`,
        );
      out.push(
        `<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + BAR_H - 4}" fill="#1e293b">${esc(bar.text)}</text>`,
      );
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
