import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import {
  AxleError,
  ErrorCode,
  Glob,
  MAX_SECRET_BYTES,
  fromBase64,
  openSealed,
  seal,
  toBase64,
  type KeyPair,
  type Logger,
  type MessageOf,
  type SecretView,
} from '@axle/shared';
import type { HubConfig } from '../daemon/config.js';
import type { Events } from './events.js';
import type { Change, SecretRecord } from './model.js';
import type { HubStore } from './state.js';

export interface SecretsDeps {
  state: HubStore;
  events: Events;
  keyPair: KeyPair;
  log: Logger;
  config: () => HubConfig;
}

/** What `GET /secrets` shows of a secret is the API contract's SecretView. */
export type { SecretView };

const LAGGING_SHOWN = 100;

/**
 * Secrets that only their hosts can read. The hub keeps each value encrypted (AES-256-GCM with
 * a data key of its own; the data key sealed to every hub's key, so a standby that becomes
 * primary can open it with its own key and the store alone opens nothing). An envoy asks
 * through its spoke; the hub checks the host against the secret's globs and seals the value
 * to that envoy's own key, so the spoke relays bytes it cannot read. Values never enter logs,
 * events, metrics or API answers.
 */
export class Secrets {
  /** Versions sealed since the last write, flushed in batches (a write per fetch would be a write per run). */
  private readonly pendingHeld = new Map<string, Map<string, number>>();
  private flushing: Promise<void> | undefined;

  constructor(private readonly d: SecretsDeps) {}

  /** Every hub's public key (this one and its peers), as the keys a data key is sealed to. */
  private hubKeys(): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>([[toBase64(this.d.keyPair.publicKey), this.d.keyPair.publicKey]]);
    for (const p of this.d.config().spanner.peers) out.set(p.pubkey, fromBase64(p.pubkey, 32));
    return out;
  }

  private dataKey(s: SecretRecord): Buffer {
    const mine = s.keys[toBase64(this.d.keyPair.publicKey)];
    if (!mine) {
      throw new AxleError(
        ErrorCode.INTERNAL,
        `secret ${s.name} was not sealed to this hub's key (the hub joined after it was set); set it again on the primary`,
      );
    }
    return Buffer.from(openSealed(mine, this.d.keyPair));
  }

  private value(s: SecretRecord): Buffer {
    const d = createDecipheriv('aes-256-gcm', this.dataKey(s), s.iv);
    d.setAAD(Buffer.from(`${s.name}\u0000${s.version}`));
    d.setAuthTag(s.tag);
    return Buffer.concat([d.update(s.data), d.final()]);
  }

  async set(name: string, value: Uint8Array, hosts: string[], by: string): Promise<SecretView> {
    if (value.length === 0 || value.length > MAX_SECRET_BYTES) {
      throw new AxleError(ErrorCode.INVALID, `a secret value is 1 to ${MAX_SECRET_BYTES} bytes, got ${value.length}`);
    }
    for (const g of hosts) Glob.compile(g);
    const prev = this.d.state.secrets.get(name);
    const version = (prev?.version ?? 0) + 1;
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.from(`${name}\u0000${version}`));
    const data = Buffer.concat([c.update(value), c.final()]);
    const keys: Record<string, Uint8Array> = {};
    for (const [b64, pub] of this.hubKeys()) keys[b64] = seal(key, pub);
    const secret: SecretRecord = {
      name,
      version,
      hosts: [...new Set(hosts)],
      mac: createHmac('sha256', key).update(value).digest('hex'),
      iv,
      tag: c.getAuthTag(),
      data,
      keys,
      setAt: Date.now(),
      setBy: by,
    };
    await this.d.events.record('secret.set', { name, version, hosts: secret.hosts, by }, [
      { kind: 'secret.put', secret },
    ]);
    return this.view(secret);
  }

  async remove(name: string, by: string): Promise<void> {
    const s = this.d.state.secrets.get(name);
    if (!s) throw new AxleError(ErrorCode.NOT_FOUND, `no secret "${name}"; list them with axle secrets list`);
    this.pendingHeld.delete(name);
    await this.d.events.record('secret.removed', { name, version: s.version, by }, [{ kind: 'secret.drop', name }]);
  }

  list(): SecretView[] {
    return [...this.d.state.secrets.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((s) => this.view(s));
  }

  private view(s: SecretRecord): SecretView {
    const globs = s.hosts.map((g) => Glob.compile(g));
    const held = this.d.state.secretHolders(s.name);
    for (const [h, v] of this.pendingHeld.get(s.name) ?? []) held.set(h, v);
    const versions: Record<string, number> = {};
    const lagging: string[] = [];
    let targets = 0;
    for (const host of this.d.state.envoys.keys()) {
      if (!globs.some((g) => g.test(host))) continue;
      targets++;
      const v = held.get(host) ?? 0;
      versions[String(v)] = (versions[String(v)] ?? 0) + 1;
      if (v < s.version && lagging.length < LAGGING_SHOWN) lagging.push(host);
    }
    return {
      name: s.name,
      version: s.version,
      hosts: s.hosts,
      mac: s.mac.slice(0, 12),
      setAt: s.setAt,
      setBy: s.setBy,
      targets,
      versions,
      lagging: lagging.sort(),
    };
  }

  /**
   * A spoke asks, for an envoy it owns, for secrets by name. Each allowed one comes back sealed
   * to the key the directory holds for that host; the others are refused with the reason.
   */
  deliver(spokeId: string, msg: MessageOf<'secret_relay'>): MessageOf<'secret_values'> {
    const rec = this.d.state.envoys.get(msg.hostname);
    if (!rec || rec.spokeId !== spokeId) {
      throw new AxleError(
        ErrorCode.FORBIDDEN,
        `${msg.hostname} is not an envoy of spoke ${spokeId}; no secrets for it`,
      );
    }
    const pub = fromBase64(rec.pubkey, 32);
    const items: MessageOf<'secret_values'>['items'] = [];
    const refused: MessageOf<'secret_values'>['refused'] = [];
    for (const name of [...new Set(msg.names)]) {
      const s = this.d.state.secrets.get(name);
      if (!s) {
        refused.push({ name, reason: `no secret "${name}" is set on the hub` });
        continue;
      }
      if (!s.hosts.some((g) => Glob.compile(g).test(msg.hostname))) {
        refused.push({
          name,
          reason: `secret "${name}" is not allowed for ${msg.hostname} (its hosts: ${s.hosts.join(', ')})`,
        });
        continue;
      }
      items.push({ name, version: s.version, sealed: seal(this.value(s), pub) });
      this.held(name, msg.hostname, s.version);
    }
    return { type: 'secret_values', items, refused };
  }

  /** Remembers a delivery, and writes only changes, in batches. */
  private held(name: string, host: string, version: number): void {
    let m = this.pendingHeld.get(name);
    if (!m) this.pendingHeld.set(name, (m = new Map()));
    m.set(host, version);
    this.flushing ??= new Promise<void>((r) => setTimeout(r, 500))
      .then(() => this.flush())
      .catch((e: unknown) => this.d.log.warn({ err: (e as Error).message }, 'could not record secret deliveries'))
      .finally(() => (this.flushing = undefined));
  }

  private async flush(): Promise<void> {
    const changes: Change[] = [];
    for (const [name, hosts] of this.pendingHeld) {
      if (!this.d.state.secrets.has(name)) continue;
      const stored = this.d.state.secretHolders(name);
      const held = [...hosts]
        .filter(([h, v]) => stored.get(h) !== v)
        .map(([hostname, version]) => ({ hostname, version }));
      if (held.length > 0) changes.push({ kind: 'secret.held', name, held });
    }
    this.pendingHeld.clear();
    if (changes.length > 0) await this.d.state.applyAll(changes);
  }

  /**
   * On becoming primary: a secret whose data key is not yet sealed to a hub that is now a peer
   * (a hub added later) is sealed to it too, so that hub can serve it after a failover.
   */
  async sealForPeers(): Promise<void> {
    const hubs = this.hubKeys();
    for (const s of this.d.state.secrets.values()) {
      const missing = [...hubs].filter(([b64]) => !s.keys[b64]);
      if (missing.length === 0) continue;
      const key = this.dataKey(s);
      const keys = { ...s.keys };
      for (const [b64, pub] of missing) keys[b64] = seal(key, pub);
      await this.d.state.apply({ kind: 'secret.put', secret: { ...s, keys } });
    }
  }

  async stop(): Promise<void> {
    await this.flushing;
  }
}
