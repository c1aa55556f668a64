import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  AxleError,
  ErrorCode,
  HANDLED,
  HttpError,
  parseHostPort,
  toBase64,
  type Router,
  type TlsMaterial,
} from '@axle/shared';
import type { HubConfig } from './config.js';

/**
 * GET /bootstrap.sh and GET /agent.tar.gz: the one-line agent install
 * (`curl -fsSL http://HUB:1530/bootstrap.sh | sudo sh -s -- --token TOKEN`).
 *
 * The agent tarball and the script template are built together into envoy-agent's
 * dist/agent/ (scripts/build-agent-bundle.mjs) and served from `agent_bundle`, so the script
 * a hub serves always names the sha256 of the tarball it serves.
 */

const BUNDLE_REL = ['envoy-agent', 'dist', 'agent', 'agent.tar.gz'];

/**
 * The bundle of the envoy-agent package installed beside this hub: walks up from this
 * module (src/ in development, dist/ or dist/bin/ when built) looking for the workspace
 * sibling or node_modules/@axle/envoy-agent.
 */
export function defaultAgentBundle(from = fileURLToPath(import.meta.url)): string | undefined {
  let dir = dirname(from);
  for (let i = 0; i < 8; i++) {
    for (const c of [join(dir, ...BUNDLE_REL), join(dir, 'node_modules', '@axle', ...BUNDLE_REL)]) {
      if (existsSync(c)) return c;
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

interface Loaded {
  key: string;
  data: Buffer;
  sha256: string;
  template: string;
}

/** The tarball and template, read once and again only when either file changes on disk. */
export class AgentBundle {
  private cache: Loaded | undefined;

  constructor(private readonly file: () => string | undefined) {}

  get path(): string | undefined {
    return this.file();
  }

  load(): Loaded {
    const file = this.file();
    if (!file) {
      throw new HttpError(
        404,
        ErrorCode.NOT_FOUND,
        'no agent bundle: build it (npm run build builds packages/envoy-agent/dist/agent/agent.tar.gz) or set agent_bundle in the hub config',
      );
    }
    const tpl = join(dirname(file), 'bootstrap.sh');
    let key: string;
    try {
      const a = statSync(file);
      const b = statSync(tpl);
      key = `${a.mtimeMs}:${a.size}:${b.mtimeMs}:${b.size}`;
    } catch (e) {
      throw new HttpError(
        404,
        ErrorCode.NOT_FOUND,
        `the agent bundle is missing (${(e as Error).message}); run npm run build, or set agent_bundle in the hub config to an agent.tar.gz with bootstrap.sh beside it`,
      );
    }
    if (this.cache?.key === key) return this.cache;
    const data = readFileSync(file);
    const template = readFileSync(tpl, 'utf8');
    for (const p of ['@HUB_URL@', '@HUB_ADDRS@', '@AGENT_SHA256@']) {
      if (!template.includes(p))
        throw new AxleError(
          ErrorCode.INTERNAL,
          `${tpl} is not a bootstrap template (no ${p}); rebuild the agent bundle`,
        );
    }
    this.cache = { key, data, template, sha256: createHash('sha256').update(data).digest('hex') };
    return this.cache;
  }
}

/** Only characters that can never end a single-quoted shell string or start a substitution. */
const SAFE = /^[A-Za-z0-9.:[\]/_+=-]+$/;

export interface BootstrapValues {
  hubUrl: string;
  hubAddrs: string[];
  sha256: string;
  /** Base64 Ed25519 keys of this hub and its peers: the only hub keys the envoy will trust. */
  hubKeys: string[];
  /** curl's pin of this hub's TLS key; empty with insecure_transport. */
  hubPin: string;
}

export function renderBootstrap(template: string, v: BootstrapValues): string {
  for (const s of [v.hubUrl, ...v.hubAddrs, v.sha256, ...v.hubKeys, ...(v.hubPin ? [v.hubPin] : [])]) {
    if (!SAFE.test(s))
      throw new AxleError(ErrorCode.INTERNAL, `refusing to put ${JSON.stringify(s)} into the bootstrap script`);
  }
  for (const p of ['@HUB_PUBKEYS@', '@HUB_PIN@'])
    if (!template.includes(p))
      throw new AxleError(ErrorCode.INTERNAL, `the bootstrap template has no ${p}; rebuild the agent bundle`);
  return template
    .replaceAll('@HUB_URL@', v.hubUrl)
    .replaceAll('@HUB_ADDRS@', v.hubAddrs.join(' '))
    .replaceAll('@AGENT_SHA256@', v.sha256)
    .replaceAll('@HUB_PUBKEYS@', v.hubKeys.join(' '))
    .replaceAll('@HUB_PIN@', v.hubPin);
}

/** host:port from the request's Host header when it is a valid address, else undefined. */
function hostHeader(req: IncomingMessage): string | undefined {
  const h = req.headers.host;
  if (typeof h !== 'string' || h.length > 300) return undefined;
  try {
    parseHostPort(h);
    return h;
  } catch {
    return undefined;
  }
}

export interface BootstrapDeps {
  config: () => HubConfig;
  /** Every hub address envoys should know (this hub's public or listen address, then its peers). */
  hubAddrs: () => string[];
  /** The address this hub listens on (host:port). */
  listenAddr: () => string;
  /** The TLS files this hub serves; undefined with insecure_transport. */
  tls: () => TlsMaterial | undefined;
  /** This hub's and its peers' Ed25519 keys. */
  hubKeys: () => Uint8Array[];
}

/**
 * Where the script fetches from: `public_addr` if set, else the address the client used
 * (it reached us that way), else the listen address. https when this hub serves TLS (or a TLS
 * proxy in front of an insecure one says so).
 */
export function hubUrl(req: IncomingMessage, d: Pick<BootstrapDeps, 'config' | 'listenAddr' | 'tls'>): string {
  const addr = d.config().public_addr ?? hostHeader(req) ?? d.listenAddr();
  const proto = d.tls() || req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
  return `${proto}://${addr}`;
}

/** A failure answered to `curl ... | sh` without -f must still be a harmless script. */
function shellError(res: ServerResponse, status: number, message: string): typeof HANDLED {
  const quoted = `'${message.replaceAll("'", "'\\''")}'`;
  res.writeHead(status, { 'content-type': 'text/x-shellscript; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`#!/bin/sh\nprintf 'axle-bootstrap: %s\\n' ${quoted} >&2\nexit 1\n`);
  return HANDLED;
}

export function bootstrapRoutes(r: Router, d: BootstrapDeps): void {
  const bundle = new AgentBundle(() => {
    const configured = d.config().agent_bundle;
    return configured !== undefined ? resolve(configured) : defaultAgentBundle();
  });

  r.get('/bootstrap.sh', (ctx) => {
    let b: Loaded;
    try {
      b = bundle.load();
    } catch (e) {
      return shellError(ctx.res, e instanceof HttpError ? e.status : 500, (e as Error).message);
    }
    const url = hubUrl(ctx.req, d);
    const own = url.replace(/^https?:\/\//, '');
    const addrs = [...new Set([own, ...d.hubAddrs()])];
    const script = renderBootstrap(b.template, {
      hubUrl: url,
      hubAddrs: addrs,
      sha256: b.sha256,
      hubKeys: d.hubKeys().map(toBase64),
      hubPin: d.tls()?.spkiPin ?? '',
    });
    ctx.res.writeHead(200, { 'content-type': 'text/x-shellscript; charset=utf-8', 'cache-control': 'no-store' });
    ctx.res.end(script);
    return HANDLED;
  });

  r.get('/agent.tar.gz', (ctx) => {
    const b = bundle.load();
    ctx.res.writeHead(200, {
      'content-type': 'application/gzip',
      'content-length': String(b.data.length),
      'x-axle-sha256': b.sha256,
      'cache-control': 'no-store',
    });
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : b.data);
    return HANDLED;
  });
}
