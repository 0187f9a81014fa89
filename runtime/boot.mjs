// Entry point of every runtime worker. Process modules may be TypeScript, and
// Node 20 workers do not inherit a parent's tsx loader, so each worker
// registers tsx for itself, then imports the entry named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
