import type { Resource } from '../policy.js';
import { applyGroup, applyUser } from './accounts.js';
import type { Outcome, ResourceContext } from './context.js';
import { applyCron } from './cron.js';
import { applyExec } from './exec.js';
import { applyAbsent, applyDirectory, applyFile, applySymlink } from './files.js';
import { applyBlock, applyLine } from './lines.js';
import { applyPackage } from './package.js';
import { applyRepository } from './repository.js';
import { applyService } from './service.js';

export { IdResolver } from './context.js';
export type { Outcome, ResourceContext } from './context.js';
export { detectPackageManager, packageCommands } from './package.js';
export { serviceCommands } from './service.js';
export { aptUpdateOne, repositoryFile } from './repository.js';
export { cronFile } from './cron.js';
export { editBlock, editLine } from './lines.js';

export function applyResource(r: Resource, ctx: ResourceContext): Promise<Outcome> {
  switch (r.kind) {
    case 'file':
      return applyFile(r, ctx);
    case 'directory':
      return applyDirectory(r, ctx);
    case 'absent':
      return applyAbsent(r, ctx);
    case 'symlink':
      return applySymlink(r, ctx);
    case 'line':
      return applyLine(r, ctx);
    case 'block':
      return applyBlock(r, ctx);
    case 'exec':
      return applyExec(r, ctx);
    case 'package':
      return applyPackage(r, ctx);
    case 'service':
      return applyService(r, ctx);
    case 'user':
      return applyUser(r, ctx);
    case 'group':
      return applyGroup(r, ctx);
    case 'cron':
      return applyCron(r, ctx);
    case 'repository':
      return applyRepository(r, ctx);
  }
}
