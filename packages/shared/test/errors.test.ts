import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AxleError, ERRORS, ErrorCode, retryOf } from '../src/index.js';
import { httpStatusFor } from '../src/http.js';

const README = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

describe('the error catalogue', () => {
  it('has one entry per code, and the README table says the same', () => {
    expect(Object.keys(ERRORS).sort()).toEqual(Object.values(ErrorCode).sort());
    const rows = [...README.matchAll(/^\| `(E_[A-Z_]+)` \| (\d{3}) \| (no|elsewhere|later) \| (.+) \|$/gm)].map((m) => [
      m[1],
      { status: Number(m[2]), retry: m[3], meaning: m[4] },
    ]);
    expect(Object.fromEntries(rows)).toEqual(ERRORS);
  });

  it('gives every API error its status and every error a retry class', () => {
    for (const [code, e] of Object.entries(ERRORS)) {
      const err = new AxleError(code as ErrorCode, 'x');
      expect(httpStatusFor(err), code).toBe(e.status);
      expect(retryOf(err), code).toBe(e.retry);
      // Refusals of what a client sent are 4xx; 5xx is for faults of a server or the path to it.
      if (
        e.retry === 'no' &&
        code !== ErrorCode.BAD_CONFIG &&
        code !== ErrorCode.KEY_PERMISSIONS &&
        code !== ErrorCode.NO_ROUTE
      )
        expect(e.status, code).toBeLessThan(500);
    }
    expect(retryOf(new Error('socket hang up'))).toBe('elsewhere');
  });
});
