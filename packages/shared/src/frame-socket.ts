/**
 * The part of a `ws` WebSocket the protocol uses. Keeping it this small lets the protocol
 * logic run over an in-memory pair in tests as well as over a real socket.
 */
export interface FrameSocket {
  readonly readyState: number;
  send(data: Uint8Array, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(): void;
  /** Stops and restarts reading (backpressure while received frames wait for their signature checks). */
  pause?(): void;
  resume?(): void;
  on(event: 'message', fn: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): this;
  on(event: 'close', fn: (code: number, reason: Buffer) => void): this;
  on(event: 'pong', fn: () => void): this;
  on(event: 'ping', fn: () => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  off(event: string, fn: (...args: never[]) => void): this;
  readonly bufferedAmount: number;
}

export const OPEN = 1;

export function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
