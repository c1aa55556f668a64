import { AxleError, ErrorCode, askSigned, errorText, type KeyPair, type Logger, type MessageOf } from '@axle/shared';
import { caOf, type EnvoyConfig } from './config.js';
import type { Assignment, StateStore } from './state.js';

export interface HubDialOptions {
  hostname: string;
  keyPair: KeyPair;
  hubAddrs: readonly string[];
  /** Hub keys to accept; with none, no hub is asked (a key merely found at an address is never trusted). */
  trustedKeys: readonly Uint8Array[];
  /** The CA hub certificates must chain to; undefined with insecure_transport (http://). */
  ca: Buffer | undefined;
  timeoutMs: number;
  log: Logger;
  signal?: AbortSignal;
}

type AssignmentMsg = MessageOf<'assignment'>;

/** Error codes that every hub would give alike: asking the next hub cannot help. */
const DEFINITIVE = new Set<string>([
  ErrorCode.UNKNOWN_KEY,
  ErrorCode.FORBIDDEN_KEY,
  ErrorCode.UNKNOWN_ENVOY,
  ErrorCode.INVALID,
  ErrorCode.BAD_MESSAGE,
  ErrorCode.BAD_TOKEN,
  ErrorCode.CONFLICT,
  ErrorCode.FORBIDDEN,
  ErrorCode.NO_ROUTE,
]);

/**
 * Sends one signed request (POST /api/v1/envoy) to the first hub that answers, trying every
 * address in order. A hub that cannot be reached, or answers with a transient error, moves on
 * to the next one; if none answers, the error lists each address and its reason.
 */
export async function askHubs(
  o: HubDialOptions,
  msg: MessageOf<'enroll'> | MessageOf<'locate'>,
  minTerm = 0,
): Promise<AssignmentMsg> {
  const pinned = o.trustedKeys;
  if (pinned.length === 0)
    throw new AxleError(
      ErrorCode.UNTRUSTED,
      `this envoy trusts no hub key, so it asks no hub: set hub_pubkeys in its config to the keys \`axle-hub keygen\` prints (the bootstrap command from \`axle tokens create\` writes them)`,
    );
  const reasons: string[] = [];
  let definitive: AxleError | undefined;
  const trusts = (k: Uint8Array) => pinned.some((p) => Buffer.from(p).equals(Buffer.from(k)));
  for (const addr of o.hubAddrs) {
    if (o.signal?.aborted) throw new AxleError(ErrorCode.CLOSED, 'stopped');
    try {
      const reply = await askSigned(addr, msg, {
        id: o.hostname,
        role: 'envoy',
        keyPair: o.keyPair,
        ca: o.ca,
        trusts,
        timeoutMs: o.timeoutMs,
        ...(o.signal ? { signal: o.signal } : {}),
      });
      if (reply.type !== 'assignment')
        throw new AxleError(ErrorCode.BAD_MESSAGE, `hub answered ${msg.type} with ${reply.type}`);
      if (reply.term < minTerm) {
        // A stale primary that came back must not send this envoy anywhere.
        o.log.warn({ hub: addr, term: reply.term, seen: minTerm }, 'ignoring an assignment from a lower hub term');
        reasons.push(`${addr}: answered with term ${reply.term}, below the term ${minTerm} already seen`);
        continue;
      }
      return reply;
    } catch (e) {
      const code = (e as { code?: string }).code;
      reasons.push(`${addr}: ${errorText(e)}`);
      o.log.debug({ hub: addr, err: errorText(e), request: msg.type }, 'hub did not answer');
      if (e instanceof AxleError && code && DEFINITIVE.has(code)) definitive ??= e;
    }
  }
  if (definitive) throw new AxleError(definitive.code, `${msg.type} refused: ${definitive.message}`);
  throw new AxleError(ErrorCode.UNREACHABLE, `no hub answered ${msg.type}: ${reasons.join('; ')}`);
}

/** Sends an enroll or locate to the hubs and stores the assignment the answer gives. */
export async function assignFromHubs(
  o: { config: EnvoyConfig; keyPair: KeyPair; store: StateStore; log: Logger; signal?: AbortSignal },
  msg: MessageOf<'enroll'> | MessageOf<'locate'>,
): Promise<{ reply: AssignmentMsg; assignment: Assignment }> {
  const c = o.config;
  const prev = o.store.assignment;
  const reply = await askHubs(
    {
      hostname: c.hostname,
      keyPair: o.keyPair,
      // A locate also tries the hubs the last answer named; enrolling knows only the config's.
      hubAddrs: msg.type === 'locate' ? [...new Set([...c.hub_addrs, ...(prev?.hubAddrs ?? [])])] : c.hub_addrs,
      timeoutMs: c.request_timeout,
      log: o.log,
      ...(o.signal ? { signal: o.signal } : {}),
      trustedKeys: o.store.trustedHubKeys(c.hub_pubkeys),
      ca: caOf(c),
    },
    msg,
    prev?.term ?? 0,
  );
  const assignment = assignmentFrom(reply, prev, c.hub_addrs);
  await o.store.saveAssignment(assignment);
  return { reply, assignment };
}

/**
 * The one place an assignment is made from an answer: a hub's (enroll, locate) or a spoke's
 * redirect (with only the term a hub's proof vouches for). Where to go, at which epoch and
 * term, and every hub's address and key, keeping what the answer leaves out from `prev`.
 */
export function assignmentFrom(
  reply: Pick<AssignmentMsg, 'status' | 'target' | 'epoch' | 'term'> &
    Partial<Pick<AssignmentMsg, 'hubAddrs' | 'hubKeys'>>,
  prev: Assignment | undefined,
  configAddrs: readonly string[],
): Assignment {
  return {
    status: reply.status,
    ...(reply.target ? { target: reply.target } : {}),
    epoch: reply.epoch,
    term: Math.max(reply.term, prev?.term ?? 0),
    hubAddrs: reply.hubAddrs?.length ? reply.hubAddrs : (prev?.hubAddrs ?? [...configAddrs]),
    ...(reply.hubKeys?.length ? { hubKeys: reply.hubKeys } : prev?.hubKeys ? { hubKeys: prev.hubKeys } : {}),
    updatedAt: Date.now(),
  };
}
