import { AxleError, ErrorCode, errorText, openSealed, type KeyPair, type Message } from '@axle/shared';
import type { RunSecrets } from './resources/context.js';

/**
 * Asks the hub, through the spoke, for the secrets a run needs. Each arrives sealed to this
 * envoy's key; they are opened in memory for the run and never written anywhere but into the
 * files the policies name.
 */
export async function fetchSecrets(
  request: (msg: Message, timeoutMs: number) => Promise<Message>,
  keyPair: KeyPair,
  names: string[],
  timeoutMs: number,
): Promise<RunSecrets> {
  const reply = await request({ type: 'secret_fetch', names }, timeoutMs);
  if (reply.type !== 'secret_values') throw new AxleError(ErrorCode.BAD_MESSAGE, `the spoke answered ${reply.type}`);
  const values = new Map<string, Buffer>();
  const refused = new Map(reply.refused.map((r) => [r.name, r.reason]));
  for (const item of reply.items) {
    try {
      values.set(item.name, Buffer.from(openSealed(item.sealed, keyPair)));
    } catch (e) {
      refused.set(item.name, `secret "${item.name}" did not open with this envoy's key: ${errorText(e)}`);
    }
  }
  return { values, refused };
}
