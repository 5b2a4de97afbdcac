/** The bench's output: one JSON line per figure, then a table (docs/bench.md). */

export interface Figure {
  bench: string;
  unit: string;
  n?: number;
  p50?: number;
  p95?: number;
  max?: number;
  value?: number | null;
  /** The target, when it has one, and whether this figure meets it. */
  target?: string;
  met?: boolean;
  /** What the figure is about (profile, runtime, prober) and how it was obtained. */
  [key: string]: unknown;
}

export function quantile(values: number[], q: number): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

const r1 = (n: number) => (Number.isFinite(n) ? Math.round(n * 10) / 10 : null);

/** A distribution figure: n, p50, p95, max. */
export function distribution(bench: string, unit: string, values: number[], extra: Record<string, unknown> = {}): Figure {
  const finite = values.filter((v) => Number.isFinite(v));
  return { bench, unit, n: finite.length, p50: r1(quantile(finite, 0.5)) as number, p95: r1(quantile(finite, 0.95)) as number, max: r1(Math.max(...finite)) as number, ...extra };
}

export const figures: Figure[] = [];

/** Prints a figure as one JSON line (stdout) and keeps it for the table. */
export function emit(figure: Figure): void {
  const check = /^(p50|p95|value) <= ([\d.]+)$/.exec(figure.target ?? '');
  if (check && figure.met === undefined && typeof figure[check[1]!] === 'number') figure.met = (figure[check[1]!] as number) <= Number(check[2]);
  figures.push(figure);
  process.stdout.write(JSON.stringify(figure) + '\n');
}

/** The closing table, one row per figure. */
export function table(): string {
  const cell = (f: Figure) => (f.value !== undefined ? (f.value === null ? 'not yet measured' : String(f.value)) : `${f.p50} / ${f.p95} / ${f.max} (n ${f.n})`);
  const about = (f: Figure) =>
    Object.entries(f)
      .filter(([k]) => !['bench', 'unit', 'n', 'p50', 'p95', 'max', 'value', 'target', 'met', 'note', 'source'].includes(k))
      .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
      .join(', ');
  const rows = figures.map((f) => `| ${f.bench} | ${about(f)} | ${f.unit} | ${cell(f)} | ${f.target ?? ''}${f.met === undefined ? '' : f.met ? ' ✓' : ' ✗ missed'} |`);
  return `| figure | for | unit | value, or p50 / p95 / max | target |\n|---|---|---|---|---|\n${rows.join('\n')}`;
}
