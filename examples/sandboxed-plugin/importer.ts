/**
 * A plugin module that imports Node. A sandboxed module has no imports: its
 * top level fails on the import as it loads, so the spawn is refused and the
 * process never starts.
 */

import { readFileSync } from 'node:fs';
import type { SandboxContext } from '../../runtime/sandbox/index.ts';

export async function plugin(ctx: SandboxContext): Promise<void> {
  ctx.log(readFileSync('/etc/passwd', 'utf8'));
}
