/**
 * Typed errors of the runtime. Like the post office's, each is thrown before
 * anything was sent or changed.
 */

export class RuntimeError extends Error {
  override name = 'RuntimeError';
}

/** `receive` waited past its timeout. */
export class ReceiveTimeout extends RuntimeError {
  override name = 'ReceiveTimeout';
  constructor(readonly timeoutMs: number) {
    super(`nothing received within ${timeoutMs} ms`);
  }
}

/** `request` got no reply within its timeout (a later reply is dropped). */
export class RequestTimeout extends RuntimeError {
  override name = 'RequestTimeout';
  constructor(readonly timeoutMs: number) {
    super(`no reply within ${timeoutMs} ms`);
  }
}

/** `sendWhenRoom` waited past its timeout for room in the target's mailbox. */
export class SendTimeout extends RuntimeError {
  override name = 'SendTimeout';
  constructor(readonly timeoutMs: number) {
    super(`no room in the target's mailbox within ${timeoutMs} ms`);
  }
}

/** A value the codec cannot encode (a function, a symbol, a Ref of another process, a cycle...). */
export class EncodeError extends RuntimeError {
  override name = 'EncodeError';
}

/** Bytes that do not decode as a message (only a runtime bug or a forged message can cause it). */
export class DecodeError extends RuntimeError {
  override name = 'DecodeError';
}

/** A spawn that could not start: the module or export is missing, or the target worker refused. */
export class SpawnError extends RuntimeError {
  override name = 'SpawnError';
}

/** The process's context was used after the process ended. */
export class ProcessEnded extends RuntimeError {
  override name = 'ProcessEnded';

  /**
   * @internal One without a stack trace: the runtime throws these to unwind
   * processes killed from outside, thousands at a time in a big kill, and
   * capturing a stack for each costs more than the rest of the teardown.
   */
  static quick(message: string): ProcessEnded {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new ProcessEnded(message);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

/** The runtime has been shut down (or was never started). */
export class RuntimeStopped extends RuntimeError {
  override name = 'RuntimeStopped';
}

/** A process asked for something its powers do not include. */
export class PowerDenied extends RuntimeError {
  override name = 'PowerDenied';
}
