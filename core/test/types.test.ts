/** Type-level promises of the public API (checked by tsc; the runtime assertions keep vitest honest). */

import { describe, expectTypeOf, test } from 'vitest';
import {
  CapacityExceeded,
  type DownSignal,
  type EndSignal,
  type ExitSignal,
  type KillReason,
  type MessageSignal,
  type OwnedCapability,
  Perm,
  type PostOfficeError,
  type Region,
  type Signal,
  type Table,
} from '../index.ts';

describe('public types', () => {
  test('signals narrow on kind', () => {
    const narrow = (s: Signal) => {
      if (s.kind === 'message') expectTypeOf(s).toEqualTypeOf<MessageSignal>();
      else if (s.kind === 'down') expectTypeOf(s).toEqualTypeOf<DownSignal>();
      else if (s.kind === 'exit') expectTypeOf(s).toEqualTypeOf<ExitSignal>();
      else expectTypeOf(s).toEqualTypeOf<EndSignal>();
    };
    expectTypeOf(narrow).parameter(0).toEqualTypeOf<Signal>();
    expectTypeOf<DownSignal['reason']>().toEqualTypeOf<'closed' | 'killed'>();
    expectTypeOf<ExitSignal['from']>().toEqualTypeOf<number>();
    expectTypeOf<EndSignal['detail']>().toEqualTypeOf<Uint8Array | null>();
    expectTypeOf<DownSignal['code']>().toEqualTypeOf<number>();
    expectTypeOf<MessageSignal['caps']>().toEqualTypeOf<number[]>();
  });

  test('a kill reason is optional everywhere a kill is', () => {
    expectTypeOf<Parameters<Table['kill']>>().toEqualTypeOf<[h: number, reason?: KillReason]>();
    expectTypeOf<KillReason>().toEqualTypeOf<{ code?: number; detail?: Uint8Array }>();
  });

  test('handles are numbers; owned capabilities are plain data', () => {
    expectTypeOf<Table['send']>().parameter(0).toEqualTypeOf<number>();
    expectTypeOf<ReturnType<Table['send']>>().toEqualTypeOf<boolean>();
    expectTypeOf<ReturnType<Table['monitor']>>().toEqualTypeOf<number>();
    expectTypeOf<ReturnType<Table['toOwned']>>().toEqualTypeOf<OwnedCapability>();
    expectTypeOf<OwnedCapability>().toMatchTypeOf<{ office: number; token: number; perms: number }>();
  });

  test('errors are typed; the capacity error names its region', () => {
    expectTypeOf<CapacityExceeded['region']>().toEqualTypeOf<Region>();
    expectTypeOf(new CapacityExceeded('heap')).toMatchTypeOf<PostOfficeError>();
    expectTypeOf(Perm.SEND).toBeNumber();
  });
});
