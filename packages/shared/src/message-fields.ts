import { bytes, int, str } from './schema.js';
import { hostnameField } from './hostname.js';

/**
 * The field validators protocol messages and their parts share (ids, keys, terms, times,
 * bounded text, secret names), so one field means one thing in every message.
 */

export const hostname = hostnameField;
export const id = () =>
  str({ min: 1, max: 64, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be an id (letters, digits, ".", "-", "_")' });
export const pubkey = () => bytes({ len: 32 });
export const term = () => int({ min: 0 });
export const epoch = () => int({ min: 0 });
export const ms = () => int({ min: 0 });
export const text = (max = 4096) => str({ max });

/** A secret's name, as policies and templates refer to it (`{{ secret.db_password }}`). */
export const secretNameSchema = str({
  min: 1,
  max: 64,
  pattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
  hint: 'must be a secret name (letters, digits and "_", not starting with a digit)',
});
/** The largest secret value, in bytes. */
export const MAX_SECRET_BYTES = 64 * 1024;
