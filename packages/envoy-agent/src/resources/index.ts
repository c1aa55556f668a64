import type { Resource } from '../policy.js';
import type { Outcome, ResourceContext } from './context.js';
import { applyAbsent, applyDirectory, applyFile } from './files.js';
import { applyExec } from './exec.js';
import { applyPackage } from './package.js';
import { applyService } from './service.js';

export { IdResolver } from './context.js';
export type { Outcome, ResourceContext } from './context.js';
export { detectPackageManager, packageCommands } from './package.js';
export { serviceCommands } from './service.js';

export function applyResource(r: Resource, ctx: ResourceContext): Promise<Outcome> {
  switch (r.kind) {
    case 'file':
      return applyFile(r, ctx);
    case 'directory':
      return applyDirectory(r, ctx);
    case 'absent':
      return applyAbsent(r, ctx);
    case 'exec':
      return applyExec(r, ctx);
    case 'package':
      return applyPackage(r, ctx);
    case 'service':
      return applyService(r, ctx);
  }
}

/** "file:/etc/motd", "exec:reload-nginx": how a resource is named in results. */
export function resourceLabel(r: Resource): string {
  if (r.name) return `${r.kind}:${r.name}`;
  switch (r.kind) {
    case 'file':
      return `file:${r.file}`;
    case 'directory':
      return `directory:${r.directory}`;
    case 'absent':
      return `absent:${r.absent}`;
    case 'exec':
      return `exec:${(typeof r.exec === 'string' ? r.exec : r.exec.join(' ')).slice(0, 200)}`;
    case 'package':
      return `package:${r.package.join(',')}`;
    case 'service':
      return `service:${r.service}`;
  }
}
