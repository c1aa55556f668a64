import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
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
 * GET /bootstrap.sh and GET /agent/axle-envoy: the one-line agent install
 * (`curl -fsSL http://HUB:1530/bootstrap.sh | sudo sh -s -- --token TOKEN`).
 *
 * `npm run package` builds the agent executable and the script template together into
 * dist/agent/ (the axle-hub Debian package carries them in /usr/lib/axle/hub/agent/), and the
 * hub serves both from `agent_dir`, so the script it serves always names the sha256 of the
 * executable it serves.
 */

const AGENT_FILE = 'axle-envoy';
const TEMPLATE_FILE = 'bootstrap.sh';

/**
 * The agent directory of the build or install this hub runs from: `agent/` or `dist/agent/`
 * in the directory of this module or one above it (dist/agent/ at the top of a checkout,
 * /usr/lib/axle/hub/agent/ beside the packaged hub).
 */
export function defaultAgentDir(from = fileURLToPath(import.meta.url)): string | undefined {
  let dir = dirname(from);
  for (let i = 0; i < 8; i++) {
    for (const c of [join(dir, 'agent'), join(dir, 'dist', 'agent')]) {
      if (existsSync(join(c, AGENT_FILE)) && existsSync(join(c, TEMPLATE_FILE))) return c;
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

interface Loaded {
  key: string;
  file: string;
  size: number;
  sha256: string;
  template: string;
}

const statKey = (a: Stats, b: Stats) => `${a.ino}:${a.mtimeMs}:${a.size}:${b.ino}:${b.mtimeMs}:${b.size}`;

/**
 * The executable's size and sha256 and the script template, read again only when either file
 * changes on disk. The executable (about 90 MiB) is hashed as a stream and never held in memory.
 */
export class AgentExecutable {
  private cache: Loaded | undefined;
  private pending: { key: string; done: Promise<Loaded> } | undefined;

  constructor(private readonly dir: () => string | undefined) {}

  async load(): Promise<Loaded> {
    const dir = this.dir();
    if (!dir) {
      throw new HttpError(
        404,
        ErrorCode.NOT_FOUND,
        'no agent executable: build it (npm run package writes dist/agent/) or set agent_dir in the hub config',
      );
    }
    const file = join(dir, AGENT_FILE);
    const tpl = join(dir, TEMPLATE_FILE);
    let key: string;
    try {
      key = statKey(statSync(file), statSync(tpl));
    } catch (e) {
      throw new HttpError(
        404,
        ErrorCode.NOT_FOUND,
        `the agent executable is missing (${(e as Error).message}); run npm run package, or set agent_dir in the hub config to a directory holding axle-envoy and bootstrap.sh`,
      );
    }
    if (this.cache?.key === key) return this.cache;
    if (this.pending?.key !== key) {
      const done = this.read(key, file, tpl);
      this.pending = { key, done };
      // Handled here too, so a failed read is never an unhandled rejection; callers get it from `done`.
      const settle = () => {
        if (this.pending?.done === done) this.pending = undefined;
      };
      done.then((l) => {
        this.cache = l;
        settle();
      }, settle);
    }
    return this.pending.done;
  }

  private async read(key: string, file: string, tpl: string): Promise<Loaded> {
    const template = readFileSync(tpl, 'utf8');
    for (const p of ['@HUB_URL@', '@HUB_ADDRS@', '@AGENT_SHA256@']) {
      if (!template.includes(p))
        throw new AxleError(
          ErrorCode.INTERNAL,
          `${tpl} is not a bootstrap template (no ${p}); rebuild the agent (npm run package)`,
        );
    }
    const h = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(file)) {
      h.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    if (size === 0)
      throw new HttpError(404, ErrorCode.NOT_FOUND, `${file} is empty; rebuild the agent (npm run package)`);
    return { key, file, size, template, sha256: h.digest('hex') };
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
  const agent = new AgentExecutable(() => {
    const configured = d.config().agent_dir;
    return configured !== undefined ? resolve(configured) : defaultAgentDir();
  });

  r.get('/bootstrap.sh', async (ctx) => {
    let b: Loaded;
    try {
      b = await agent.load();
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

  r.get('/agent/axle-envoy', async (ctx) => {
    const b = await agent.load();
    const fh = await open(b.file, 'r');
    try {
      // What is sent must be the file that was hashed: one replaced since (a new build) is
      // refused, and the retry gets the new one, hashed.
      if (statKey(await fh.stat(), statSync(join(dirname(b.file), TEMPLATE_FILE))) !== b.key)
        throw new HttpError(503, ErrorCode.CONFLICT, 'the agent executable was replaced while being served; try again');
    } catch (e) {
      await fh.close();
      throw e;
    }
    ctx.res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(b.size),
      'x-axle-sha256': b.sha256,
      'cache-control': 'no-store',
    });
    if (ctx.req.method === 'HEAD') {
      await fh.close();
      ctx.res.end();
      return HANDLED;
    }
    const body = fh.createReadStream({ start: 0, end: b.size - 1 });
    body.on('error', () => ctx.res.destroy());
    ctx.res.on('close', () => body.destroy());
    body.pipe(ctx.res);
    return HANDLED;
  });
}
