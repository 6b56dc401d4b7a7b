// Counters and a latency histogram, and their Prometheus text form (exposition format 0.0.4).
// Pure data: the policy records into them with the time it is given, the shell serves the text.

/** Resolution latency buckets in seconds: 5 ms to the 10 s deadline, as DNS lookups are usually measured. */
export const LATENCY_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

export class Histogram {
  readonly counts: number[];
  count = 0;
  sum = 0;

  constructor(readonly bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    this.counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    this.count++;
    this.sum += value;
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= (this.bounds[i] as number)) this.counts[i] = (this.counts[i] ?? 0) + 1;
    }
  }
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  samples?: Array<{ labels?: Record<string, string>; value: number }>;
  histogram?: Histogram;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Record<string, string> | undefined): string {
  if (!labels) return '';
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

/** Prometheus metric names allow `[a-zA-Z_:][a-zA-Z0-9_:]*`. */
export function metricName(text: string): string {
  const s = text.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[a-zA-Z_:]/.test(s) ? s : `_${s}`;
}

export function renderPrometheus(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    out.push(`# TYPE ${f.name} ${f.type}`);
    if (f.histogram) {
      const h = f.histogram;
      h.bounds.forEach((b, i) => {
        out.push(`${f.name}_bucket{le="${num(b)}"} ${h.counts[i] ?? 0}`);
      });
      out.push(`${f.name}_bucket{le="+Inf"} ${h.count}`);
      out.push(`${f.name}_sum ${num(h.sum)}`);
      out.push(`${f.name}_count ${h.count}`);
    }
    for (const s of f.samples ?? []) out.push(`${f.name}${labelText(s.labels)} ${num(s.value)}`);
  }
  return `${out.join('\n')}\n`;
}
