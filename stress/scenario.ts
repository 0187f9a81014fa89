/**
 * What a stress scenario is: a named round that runs from a seed, so a
 * failing round is replayed exactly by running that scenario with that seed.
 */

export interface RoundContext {
  /** The round's seed: every random choice of the round derives from it. */
  readonly seed: number;
  /** Upper bound on worker threads the round may start. */
  readonly workers: number;
  /** Work per round: 1 for the ci profile, larger for soak. */
  readonly scale: number;
  /** Known (filed) defects count as violations (--strict) instead of being counted apart. */
  readonly strict: boolean;
  /** Throws when the run's time is up or it was interrupted; call it in long loops. */
  check(): void;
}

export interface RoundResult {
  /** Operations performed, by kind (records delivered, kills, ...). */
  readonly counts: Readonly<Record<string, number>>;
  /** Faults injected on purpose (threads killed, ...). */
  readonly faults?: number;
  /**
   * Known defects reproduced, by name: bugs already filed against another
   * component (see runtime-journal.ts, DEFECTS), reported apart from
   * violations unless the run is --strict.
   */
  readonly defects?: Readonly<Record<string, number>>;
  /** One line describing the round's random configuration. */
  readonly note?: string;
}

export interface Scenario {
  readonly name: string;
  /** Runs one round; throws on any invariant violation, with a message saying which. */
  round(ctx: RoundContext): Promise<RoundResult>;
}
