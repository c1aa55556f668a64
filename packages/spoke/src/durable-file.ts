import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';

/** Writes `file` whole or not at all: to a temporary file, fsynced, then renamed over it. */
export function writeDurably(file: string, data: Uint8Array): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
