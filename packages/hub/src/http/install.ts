import type { IncomingMessage } from 'node:http';
import { HANDLED, HttpError, ErrorCode, type InstallCommand, type Router } from '@axle/shared';
import { hubUrl, type BootstrapDeps } from './bootstrap.js';

/**
 * The pinned install: GET /ca.pem, and the one command `axle tokens create` prints. The command
 * pins this hub's TLS key in curl (so the script itself comes from this hub and nobody on the
 * path), and hands the script the CA's fingerprint, which it checks before it trusts anything
 * else it downloads (see deploy/bootstrap/bootstrap.sh).
 */

type Deps = Pick<BootstrapDeps, 'config' | 'listenAddr' | 'tls'>;

/** A join token's install command, for the hub the request reached, at the address the client used. */
export function installCommand(req: IncomingMessage, d: Deps, token: string): InstallCommand {
  const url = hubUrl(req, d);
  const tls = d.tls();
  if (!tls) {
    return {
      command: `curl -fsSL ${url}/bootstrap.sh | sudo sh -s -- --token ${token}`,
      url,
      warning:
        'this hub runs with insecure_transport: anyone on the path can read the token and replace the script; set tls on the hub',
    };
  }
  return {
    // -k skips only the CA check the host cannot do yet; --pinnedpubkey still refuses any other server key.
    command: `curl -fsSL --pinnedpubkey '${tls.spkiPin}' -k ${url}/bootstrap.sh | sudo sh -s -- --token ${token} --ca-pin ${tls.caPin}`,
    url,
    caPin: tls.caPin,
    hubPin: tls.spkiPin,
  };
}

/** GET /ca.pem: the CA certificates this hub's peers and envoys must trust, as in its tls.ca_file. */
export function caRoute(r: Router, d: Deps): void {
  r.get('/ca.pem', (ctx) => {
    const tls = d.tls();
    if (!tls)
      throw new HttpError(404, ErrorCode.NOT_FOUND, 'this hub runs with insecure_transport: it has no CA to serve');
    ctx.res.writeHead(200, { 'content-type': 'application/x-pem-file', 'cache-control': 'no-store' });
    ctx.res.end(tls.ca);
    return HANDLED;
  });
}
