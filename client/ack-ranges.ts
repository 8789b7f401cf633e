import type { AckRange, AckType } from '../protocol/gen/kmq/broker/v1/queues.js';

/** One settlement of one record, as a consumer issues it. */
export interface AckOp {
  partition: number;
  offset: number;
  type: AckType;
  /** Release delay, ms (nack). */
  delayMs: number;
  /** Why it was rejected. */
  reason: string;
}

function compare(a: AckOp, b: AckOp): number {
  return (
    a.partition - b.partition ||
    a.type - b.type ||
    a.delayMs - b.delayMs ||
    (a.reason === b.reason ? 0 : a.reason < b.reason ? -1 : 1) ||
    a.offset - b.offset
  );
}

/**
 * Merges settlements into as few ranges as possible: consecutive offsets of one
 * partition with the same type, delay and reason become one range; a repeated op is
 * sent once. The result is ordered by partition, type, delay, reason and offset.
 * The input is not modified; when it is already in that order (acks in offset order,
 * the usual case) it is not copied or sorted.
 */
export function mergeAckRanges(ops: readonly AckOp[]): AckRange[] {
  let sorted = ops;
  for (let i = 1; i < ops.length; i++) {
    if (compare(ops[i - 1]!, ops[i]!) > 0) {
      sorted = [...ops].sort(compare);
      break;
    }
  }
  const out: AckRange[] = [];
  let cur: AckRange | undefined;
  for (let i = 0; i < sorted.length; i++) {
    const op = sorted[i]!;
    if (
      cur !== undefined &&
      cur.partition === op.partition &&
      cur.type === op.type &&
      cur.delayMs === op.delayMs &&
      cur.reason === op.reason &&
      op.offset <= cur.lastOffset + 1
    ) {
      if (op.offset > cur.lastOffset) cur.lastOffset = op.offset;
      continue;
    }
    cur = { partition: op.partition, firstOffset: op.offset, lastOffset: op.offset, type: op.type, delayMs: op.delayMs, reason: op.reason };
    out.push(cur);
  }
  return out;
}
