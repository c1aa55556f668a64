import { Decoder, Encoder } from '@msgpack/msgpack';
import { AxleError, ErrorCode } from './errors.js';

/**
 * msgpack with every limit set. @msgpack/msgpack defaults each length limit to ~4 GB, so a
 * 3 KB frame of array headers can make it allocate hundreds of MB; and it has no depth
 * limit. A structural pre-scan rejects both before the decoder allocates anything.
 */
export interface CodecLimits {
  /** Largest encoded frame accepted, in bytes (default 1 MiB). */
  maxFrameBytes: number;
  /** Deepest nesting of lists and mappings (default 32). */
  maxDepth: number;
  maxArrayLength: number;
  maxMapLength: number;
}

export const DEFAULT_LIMITS: CodecLimits = Object.freeze({
  maxFrameBytes: 1024 * 1024,
  maxDepth: 32,
  maxArrayLength: 100_000,
  maxMapLength: 10_000,
});

/** Mapping keys no frame may carry: they reach Object.prototype in whoever consumes the value. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

function forbidKeys(key: unknown): string {
  if (typeof key !== 'string') throw new AxleError(ErrorCode.MALFORMED, 'mapping keys must be strings');
  if (FORBIDDEN_KEYS.has(key)) throw new AxleError(ErrorCode.FORBIDDEN_KEY, `mapping key "${key}" is not allowed`);
  return key;
}

export class Codec {
  readonly limits: CodecLimits;
  private readonly encoder = new Encoder({ ignoreUndefined: true });
  private readonly decoder: Decoder;

  constructor(limits: Partial<CodecLimits> = {}) {
    this.limits = Object.freeze({ ...DEFAULT_LIMITS, ...limits });
    const max = this.limits.maxFrameBytes;
    this.decoder = new Decoder({
      maxStrLength: max,
      maxBinLength: max,
      maxArrayLength: this.limits.maxArrayLength,
      maxMapLength: this.limits.maxMapLength,
      maxExtLength: 0,
      mapKeyConverter: forbidKeys,
    });
  }

  encode(value: unknown): Uint8Array {
    const out = this.encoder.encode(value);
    if (out.length > this.limits.maxFrameBytes) {
      throw new AxleError(
        ErrorCode.FRAME_TOO_LARGE,
        `encoded message is ${out.length} bytes, over the ${this.limits.maxFrameBytes}-byte frame limit`,
      );
    }
    return out;
  }

  /** Encoded size of `value`, without the frame limit: for fitting replies and reports to a budget. */
  size(value: unknown): number {
    return this.encoder.encode(value).length;
  }

  /** Decodes to `unknown`: callers narrow it with a validator, never a cast. */
  decode(bytes: Uint8Array): unknown {
    if (bytes.length > this.limits.maxFrameBytes) {
      throw new AxleError(
        ErrorCode.FRAME_TOO_LARGE,
        `frame is ${bytes.length} bytes, over the ${this.limits.maxFrameBytes}-byte limit`,
      );
    }
    prescan(bytes, this.limits);
    try {
      return this.decoder.decode(bytes);
    } catch (e) {
      if (e instanceof AxleError) throw e;
      const msg = e instanceof Error ? e.message : String(e);
      if (msg.includes('__proto__'))
        throw new AxleError(ErrorCode.FORBIDDEN_KEY, 'mapping key "__proto__" is not allowed');
      throw new AxleError(ErrorCode.MALFORMED, `malformed msgpack: ${msg}`);
    }
  }
}

const malformed = (why: string) => new AxleError(ErrorCode.MALFORMED, `malformed msgpack: ${why}`);

/**
 * Walks the msgpack structure without building values: checks every length prefix against
 * the bytes that remain, the nesting depth, that extensions are absent (Axle uses none) and
 * that exactly one value fills the frame.
 */
export function prescan(b: Uint8Array, limits: CodecLimits): void {
  const n = b.length;
  if (n === 0) throw malformed('empty frame');
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  // Items still expected at each open container level; the top level expects one value.
  const stack: number[] = [1];
  let pos = 0;
  const need = (k: number) => {
    if (pos + k > n) throw malformed(`truncated at byte ${pos}`);
  };
  const open = (items: number) => {
    // Every item takes at least one byte, so a count larger than what remains is a lie.
    if (items > n - pos) throw malformed(`container claims ${items} items but only ${n - pos} bytes remain`);
    if (items > 0) {
      if (stack.length > limits.maxDepth)
        throw new AxleError(ErrorCode.TOO_DEEP, `nesting deeper than ${limits.maxDepth} levels`);
      stack.push(items);
    }
  };
  const skip = (len: number) => {
    need(len);
    pos += len;
  };
  while (stack.length > 0) {
    const top = stack.length - 1;
    if (stack[top] === 0) {
      stack.pop();
      continue;
    }
    stack[top] = (stack[top] as number) - 1;
    need(1);
    const t = b[pos++] as number;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) continue;
    if (t >= 0x80 && t <= 0x8f) open((t & 0x0f) * 2);
    else if (t >= 0x90 && t <= 0x9f) open(t & 0x0f);
    else if (t >= 0xa0 && t <= 0xbf) skip(t & 0x1f);
    else {
      switch (t) {
        case 0xc4:
        case 0xd9:
          need(1);
          skip(dv.getUint8(pos++));
          break;
        case 0xc5:
        case 0xda:
          need(2);
          pos += 2;
          skip(dv.getUint16(pos - 2));
          break;
        case 0xc6:
        case 0xdb:
          need(4);
          pos += 4;
          skip(dv.getUint32(pos - 4));
          break;
        case 0xcc:
        case 0xd0:
          skip(1);
          break;
        case 0xcd:
        case 0xd1:
          skip(2);
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          skip(4);
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          skip(8);
          break;
        case 0xdc:
          need(2);
          pos += 2;
          open(dv.getUint16(pos - 2));
          break;
        case 0xdd:
          need(4);
          pos += 4;
          open(dv.getUint32(pos - 4));
          break;
        case 0xde:
          need(2);
          pos += 2;
          open(dv.getUint16(pos - 2) * 2);
          break;
        case 0xdf:
          need(4);
          pos += 4;
          open(dv.getUint32(pos - 4) * 2);
          break;
        case 0xc1:
          throw malformed('reserved byte 0xc1');
        default:
          throw malformed(`extension type 0x${t.toString(16)} is not used by Axle`);
      }
    }
  }
  if (pos !== n) throw malformed(`${n - pos} trailing bytes after the value`);
}

export const defaultCodec = new Codec();
