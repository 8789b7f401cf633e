import { describe, expect, it } from 'vitest';
import { newIdempotencyKey } from './idempotency-keys.js';

describe('newIdempotencyKey', () => {
  it('gives version 4 UUIDs, none repeated across refills of its random bytes', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const k = newIdempotencyKey();
      expect(k).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(k);
    }
    expect(seen.size).toBe(20_000);
  });

  it('uses every hex digit in every free position', () => {
    const digits = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 2_000; i++) [...newIdempotencyKey()].forEach((c, j) => digits[j]!.add(c));
    const fixed = new Map([[8, 1], [13, 1], [14, 1], [18, 1], [19, 4], [23, 1]]);
    digits.forEach((d, j) => expect(d.size).toBe(fixed.get(j) ?? 16));
  });
});
