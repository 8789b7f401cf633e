import { describe, expect, it } from 'vitest';
import { DURATION_PATTERN, QUANTITY_PATTERN, formatDurationMs, object } from './schema.js';

describe('schema building blocks', () => {
  it('formats a duration bound in the largest unit that divides it', () => {
    expect(formatDurationMs(100)).toBe('100ms');
    expect(formatDurationMs(1000)).toBe('1s');
    expect(formatDurationMs(90_000)).toBe('90s');
    expect(formatDurationMs(43_200_000)).toBe('12h');
    expect(formatDurationMs(365 * 86_400_000)).toBe('365d');
    expect(formatDurationMs(2 ** 31 - 1)).toBe('2147483647 ms (about 24.9 days)');
  });

  it('reads durations as lib/duration.ts does, and quantities without fractions', () => {
    const duration = new RegExp(DURATION_PATTERN);
    for (const ok of ['0ms', '200ms', '30s', '5m', '2h', '7d']) expect(duration.test(ok), ok).toBe(true);
    for (const bad of ['', '7', '1.5s', '-1s', '30 s', '1h30m', '7days', '1000000d']) expect(duration.test(bad), bad).toBe(false);
    const quantity = new RegExp(QUANTITY_PATTERN);
    for (const ok of ['0', '1048576', '512Ki', '20Gi', '1G']) expect(quantity.test(ok), ok).toBe(true);
    for (const bad of ['', '1.5Gi', '20 GB', '20GB', '-1']) expect(quantity.test(bad), bad).toBe(false);
  });

  it('builds an object schema from every key of a spec interface', () => {
    interface Example {
      a?: number;
      b: string;
    }
    const s = object<Example>('An example.', { a: { type: 'integer' }, b: { type: 'string' } }, { required: ['b'] });
    expect(s).toEqual({ type: 'object', description: 'An example.', required: ['b'], properties: { a: { type: 'integer' }, b: { type: 'string' } } });
  });
});
