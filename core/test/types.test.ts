/** Type-level promises of the public API (checked by tsc; the runtime assertions keep vitest honest). */

import { describe, expectTypeOf, test } from 'vitest';
import {
  CapacityExceeded,
  type DownSignal,
  type EndSignal,
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
      else expectTypeOf(s).toEqualTypeOf<EndSignal>();
    };
    expectTypeOf(narrow).parameter(0).toEqualTypeOf<Signal>();
    expectTypeOf<DownSignal['reason']>().toEqualTypeOf<'closed' | 'killed'>();
    expectTypeOf<MessageSignal['caps']>().toEqualTypeOf<number[]>();
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
