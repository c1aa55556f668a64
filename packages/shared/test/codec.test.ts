import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AxleError, Codec } from '../src/index.js';

const codec = new Codec();
const codeOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof AxleError) return e.code;
    throw e;
  }
  return 'ok';
};

describe('codec', () => {
  it('round-trips plain data', () => {
    const v = { type: 'checkin', n: 3, list: [1, 'a', null, true], bin: new Uint8Array([1, 2, 3]), nested: { x: 1.5 } };
    expect(codec.decode(codec.encode(v))).toEqual(v);
  });

  it('refuses a 3 KB frame of array headers that claims billions of items without allocating', () => {
    // dd ffffffff repeated: each array32 header claims 4,294,967,295 items.
    const frame = Buffer.alloc(3 * 1024);
    for (let i = 0; i + 5 <= frame.length; i += 5) frame.set([0xdd, 0xff, 0xff, 0xff, 0xff], i);
    const before = process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed;
    expect(codeOf(() => codec.decode(frame))).toBe('E_MALFORMED');
    const after = process.memoryUsage().arrayBuffers + process.memoryUsage().heapUsed;
    expect(after - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('refuses huge string, binary and map length prefixes', () => {
    expect(codeOf(() => codec.decode(Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x41])))).toBe('E_MALFORMED');
    expect(codeOf(() => codec.decode(Buffer.from([0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00])))).toBe('E_MALFORMED');
    expect(codeOf(() => codec.decode(Buffer.from([0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa1, 0x61])))).toBe('E_MALFORMED');
  });

  it('refuses nesting deeper than the limit', () => {
    const deep = Buffer.alloc(100, 0x91);
    expect(codeOf(() => codec.decode(Buffer.concat([deep, Buffer.from([0x01])])))).toBe('E_TOO_DEEP');
    const ok = Buffer.concat([Buffer.alloc(31, 0x91), Buffer.from([0x01])]);
    expect(codeOf(() => codec.decode(ok))).toBe('ok');
  });

  it('refuses prototype keys and non-string keys', () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const kb = Buffer.from(key);
      const frame = Buffer.concat([Buffer.from([0x81, 0xa0 | kb.length]), kb, Buffer.from([0x01])]);
      expect(codeOf(() => codec.decode(frame))).toBe('E_FORBIDDEN_KEY');
    }
    expect(codeOf(() => codec.decode(Buffer.from([0x81, 0x01, 0x02])))).toBe('E_MALFORMED');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses truncated frames, trailing bytes, extensions and reserved bytes', () => {
    expect(codeOf(() => codec.decode(Buffer.from([0x92, 0x01])))).toBe('E_MALFORMED');
    expect(codeOf(() => codec.decode(Buffer.from([0x01, 0x02])))).toBe('E_MALFORMED');
    expect(codeOf(() => codec.decode(Buffer.from([0xd6, 0xff, 0, 0, 0, 0])))).toBe('E_MALFORMED');
    expect(codeOf(() => codec.decode(Buffer.from([0xc1])))).toBe('E_MALFORMED');
    expect(codeOf(() => codec.decode(Buffer.alloc(0)))).toBe('E_MALFORMED');
  });

  it('enforces the frame size limit on both sides, configurable', () => {
    const small = new Codec({ maxFrameBytes: 1024 });
    expect(codeOf(() => small.encode({ s: 'x'.repeat(2000) }))).toBe('E_FRAME_TOO_LARGE');
    expect(codeOf(() => small.decode(Buffer.alloc(2000, 0xc0)))).toBe('E_FRAME_TOO_LARGE');
    expect(codeOf(() => codec.decode(codec.encode({ s: 'x'.repeat(2000) })))).toBe('ok');
  });

  it("random bytes only ever produce the codec's own errors (a hang fails the test timeout)", {
    timeout: 60_000,
  }, () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 4096 }), (bytes) => {
        try {
          codec.decode(bytes);
        } catch (e) {
          if (!(e instanceof AxleError)) return false;
          return ['E_MALFORMED', 'E_TOO_DEEP', 'E_FORBIDDEN_KEY', 'E_FRAME_TOO_LARGE'].includes(e.code);
        }
        return true;
      }),
      { numRuns: 5000 },
    );
    // Mutations of valid frames reach deeper into the decoder than uniform noise does.
    const seed = codec.encode({
      type: 'report',
      run: { id: 'abc', results: [{ status: 'ok', message: 'x', durationMs: 1.5 }] },
      b: new Uint8Array(8),
    });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        (edits) => {
          const m = Uint8Array.from(seed);
          for (const [i, v] of edits) m[i] = v;
          try {
            codec.decode(m);
          } catch (e) {
            return e instanceof AxleError;
          }
          return true;
        },
      ),
      { numRuns: 5000 },
    );
  });
});
