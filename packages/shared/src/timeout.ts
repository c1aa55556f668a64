/**
 * Settles as `p` does, or rejects with `err()` after `ms`, clearing its timer either way. For
 * calls that must not hold a caller past its deadline even when they ignore their own.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(err()), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
