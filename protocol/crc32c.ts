import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C (Castagnoli) of `data`, as an unsigned 32-bit number. */
export function crc32c(data: Buffer): number {
  return nativeCrc32c(data) >>> 0;
}
