import { AxleError, ErrorCode } from './errors.js';

/** Config bundles cross the wire in chunks this size, well under the default 1 MiB frame limit. */
export const CHUNK_BYTES = 512 * 1024;

export function* chunksOf(data: Uint8Array, size = CHUNK_BYTES): Generator<{ offset: number; data: Uint8Array }> {
  for (let offset = 0; offset < data.length; offset += size)
    yield { offset, data: data.subarray(offset, offset + size) };
}

/**
 * Reassembles chunks that arrive in order. The total is fixed by the first chunk and capped,
 * so a peer cannot make us allocate more than `maxTotal` bytes.
 */
export class Assembler {
  private readonly buf: Uint8Array;
  private received = 0;

  constructor(
    readonly total: number,
    maxTotal: number,
  ) {
    if (total > maxTotal)
      throw new AxleError(
        ErrorCode.BUNDLE_REFUSED,
        `config bundle refused: ${total} bytes is over the ${maxTotal}-byte limit`,
      );
    this.buf = new Uint8Array(total);
  }

  get size(): number {
    return this.received;
  }

  /** Adds the chunk at `offset` (which must be the next one); returns whether the whole is here. */
  add(offset: number, data: Uint8Array): boolean {
    if (offset !== this.received)
      throw new AxleError(
        ErrorCode.INVALID,
        `chunk at ${offset} arrived, expected ${this.received}; start the transfer again`,
      );
    if (offset + data.length > this.total)
      throw new AxleError(ErrorCode.INVALID, `chunk runs past the announced ${this.total} bytes`);
    this.buf.set(data, offset);
    this.received += data.length;
    return this.received === this.total;
  }

  get bytes(): Uint8Array {
    return this.buf;
  }
}
