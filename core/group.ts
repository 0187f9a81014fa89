/**
 * A route group as its owning table sees it. The Group object holds one
 * reference on the group slot (G_REFS) until it is released, so its index
 * and generation stay valid for its lifetime.
 */

import { InvalidHandle } from './errors.ts';
import { createGroup, groupGen, isDead, killGroupFor, releaseGroup } from './groups.ts';
import { Mailbox, type MailboxOptions } from './mailbox.ts';
import { checkKillReason, type KillReason } from './reasons.ts';
import type { Table } from './table.ts';

export class Group {
  /** Slot index in the group pool. */
  readonly index: number;
  readonly generation: number;
  private released = false;

  /** @internal */
  constructor(readonly table: Table) {
    this.index = createGroup(table.o);
    this.generation = groupGen(table.o, this.index);
  }

  /** A new mailbox bound to a new route in this group. In a dead group the route is born closed (killed). */
  createMailbox(options: MailboxOptions = {}): Mailbox {
    this.checkLive();
    const mailbox = new Mailbox(this, options);
    this.table.mailboxes.add(mailbox);
    return mailbox;
  }

  /**
   * Kills this group and every group linked to it, transitively, before
   * returning. Every route closed and every group killed carries `reason`'s
   * code and detail (RangeError, before anything changes, for a bad one).
   */
  kill(reason?: KillReason): void {
    this.checkLive();
    checkKillReason(reason);
    killGroupFor(this.table.o, this.index, this.generation, reason);
  }

  /** Whether the group has been killed. A dead group stays dead. */
  get dead(): boolean {
    this.checkLive();
    return isDead(this.table.o, this.index);
  }

  /**
   * Lets go of the group. It lives on while its routes do; once nothing
   * names it, it is freed (and if it is still alive, its links are dropped
   * without killing anyone: nothing could reach it any more).
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.table.groups.delete(this);
    releaseGroup(this.table.o, this.index);
  }

  /** @internal */
  checkLive(): void {
    if (this.released) throw new InvalidHandle('this group has been released');
  }
}
