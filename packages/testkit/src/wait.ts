/** Polls until `check` returns a truthy value or throws when the deadline passes. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  o: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (o.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${o.what ?? 'condition'}${last ? `: ${String(last)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 25));
  }
}

/** Resolves with the first emission of `event`, or rejects after `timeoutMs`. */
export function nextEvent<T = unknown>(
  emitter: { once(e: string, fn: (...a: never[]) => void): unknown },
  event: string,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} event within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, ((v: T) => {
      clearTimeout(t);
      resolve(v);
    }) as (...a: never[]) => void);
  });
}
