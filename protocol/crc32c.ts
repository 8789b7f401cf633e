import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/**
 * CRC32C (Castagnoli) of `data`, as an unsigned 32-bit number.
 *
 * Native (@node-rs/crc32, hardware CRC) rather than a JavaScript table: measured with
 * bench/crc32c.ts on Node 20, x64, one core —
 *   100 B:   native ~300 ns/call, JS table ~320 ns/call (call overhead dominates)
 *   16 KiB:  native ~3.5 GB/s,    JS table ~0.31 GB/s
 *   1 MiB:   native ~3.9 GB/s,    JS table ~0.31 GB/s
 * Batches are 16 KiB–1 MiB, where native is 11–13x faster.
 */
export function crc32c(data: Buffer): number {
  return nativeCrc32c(data) >>> 0;
}
