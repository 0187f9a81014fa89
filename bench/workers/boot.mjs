// Entry point of every bench worker. Node 20 workers do not inherit the tsx
// loader of a parent started with `tsx` (nor take it from
// `execArgv: ['--import', 'tsx']`: the worker then fails with
// ERR_UNKNOWN_FILE_EXTENSION), so each worker registers tsx itself, scoped to
// this import, and loads its TypeScript entry named in workerData.
import { workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

await tsImport(workerData.entry, import.meta.url);
