import { randomFillSync } from 'node:crypto';

const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** UUIDs per refill of the random bytes. */
const POOL = 256;
const random = Buffer.alloc(16 * POOL);
let used = POOL;
const text = Buffer.alloc(36);

/**
 * A random (version 4) UUID, in the form crypto.randomUUID() gives. The sidecar
 * makes one for every message published without an idempotency key; this one
 * formats the bytes in a buffer and makes one string, where randomUUID() leaves
 * some 500 bytes of intermediate strings per call.
 */
export function newIdempotencyKey(): string {
  if (used === POOL) {
    randomFillSync(random);
    used = 0;
  }
  const at = 16 * used++;
  random[at + 6] = (random[at + 6]! & 0x0f) | 0x40;
  random[at + 8] = (random[at + 8]! & 0x3f) | 0x80;
  let p = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) text[p++] = 0x2d;
    const b = random[at + i]!;
    text[p++] = HEX[b >> 4]!;
    text[p++] = HEX[b & 15]!;
  }
  return text.toString('latin1', 0, 36);
}
