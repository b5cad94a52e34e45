import type { Registry } from 'prom-client';

/** One sample of a metric, read back from a registry as Prometheus would scrape it. */
export async function sample(
  registry: Registry,
  name: string,
  labels: Record<string, string | number>,
  series = name,
): Promise<number | undefined> {
  const metrics = await registry.getMetricsAsJSON();
  const metric = metrics.find((m) => m.name === name);
  const values = (metric?.values ?? []) as {
    value: number;
    labels: Record<string, string | number>;
    metricName?: string;
  }[];
  const found = values.find(
    (v) =>
      (v.metricName ?? name) === series &&
      Object.entries(labels).every(([key, value]) => v.labels[key] === value),
  );
  return found?.value;
}

/** Every `outcome` of `bufio_records_total` for one buffer. */
export async function outcomes(
  registry: Registry,
  buffer: string,
): Promise<Record<string, number | undefined>> {
  const result: Record<string, number | undefined> = {};
  for (const outcome of [
    'pushed',
    'processed',
    'failed',
    'retried',
    'dropped',
    'dead_lettered',
    'coalesced',
    'refused',
    'unreadable',
  ]) {
    result[outcome] = await sample(registry, 'bufio_records_total', { buffer, outcome });
  }
  return result;
}
