// Worker threads under Node 20 cannot load TypeScript by themselves: register
// tsx's loader in this thread, then import the real worker script.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
