import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameReader, REQUEST_PREFIX_BYTES, encodeRequest, parseRequestBody } from './frame.js';
import type { FrameRejection } from './frame.js';

describe('FrameReader', () => {
  it('yields the same frames however the byte stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ api: fc.integer({ min: 0, max: 60 }), header: fc.uint8Array({ maxLength: 40 }), payload: fc.uint8Array({ maxLength: 3000 }) }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 30 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.flatMap((f, i) => encodeRequest(f.api, 0, i + 1, f.header, [Buffer.from(f.payload)])));
          const got: ReturnType<typeof parseRequestBody>[] = [];
          const reader = new FrameReader(REQUEST_PREFIX_BYTES, 1 << 20, (body) => got.push(parseRequestBody(Buffer.from(body))), () => {
            throw new Error('rejected');
          });
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const n = cuts[i % cuts.length]!;
            reader.push(stream.subarray(at, at + n));
            at += n;
          }
          expect(got.map((g) => [g.apiKey, g.correlationId, [...g.header], [...g.payload]])).toEqual(frames.map((f, i) => [f.api, i + 1, [...f.header], [...f.payload]]));
        },
      ),
    );
  });

  it('refuses a frame by its prefix, before the body arrives', () => {
    const rejections: FrameRejection[] = [];
    const reader = new FrameReader(REQUEST_PREFIX_BYTES, 1024, () => {
      throw new Error('no frame expected');
    }, (r) => rejections.push(r));
    const prefix = Buffer.alloc(REQUEST_PREFIX_BYTES);
    prefix.writeUInt32BE(1_000_000, 0);
    reader.push(prefix);
    expect(rejections).toHaveLength(1);
    expect(rejections[0]!.reason).toContain('1000000');
    reader.push(Buffer.alloc(100));
    expect(rejections).toHaveLength(1);
  });
});
