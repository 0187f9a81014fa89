// Worker threads cannot load TypeScript by themselves: register tsx's loader
// in this thread, then import the .ts worker module named in workerData.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.__script);
