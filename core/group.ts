/**
 * A route group as its owning table sees it. The Group object holds one
 * reference on the group slot (G_REFS) until it is released, so its index
 * and generation stay valid for its lifetime.
 */

import { InvalidHandle } from './errors.ts';
import { createGroup, groupGen, isDead, killGroupFor, releaseGroupObject, setTrap } from './groups.ts';
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
    this.index = createGroup(table.o, table.index, table.generation);
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

  /**
   * While `mailbox` (one of this group's own, open) is set, the group traps
   * exits: when a group linked to it dies, this group is not killed; the link
   * is removed and an `exit` signal naming the dead group comes to `mailbox`
   * instead, the way a down does (never lost to a full ring). Linking it to
   * a group already dead (or through a closed route) gives an exit too. A
   * kill of this group itself (`kill()`, or a kill through a route of it)
   * still kills it. `null` stops trapping; so does closing the mailbox. Does
   * nothing to a dead group. RangeError for a mailbox of another group.
   */
  trapExits(mailbox: Mailbox | null): void {
    this.checkLive();
    const o = this.table.o;
    if (mailbox !== null) {
      this.table.checkMailbox(mailbox);
      if (mailbox.group !== this) throw new RangeError('a group traps exits into a mailbox of its own');
      if (mailbox.finished) throw new InvalidHandle('the trapping mailbox is closed');
      mailbox.trapping = true;
      setTrap(o, this.index, this.generation, mailbox.route, mailbox.generation);
    } else {
      setTrap(o, this.index, this.generation, -1, 0);
    }
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
    releaseGroupObject(this.table.o, this.index);
  }

  /** @internal */
  checkLive(): void {
    if (this.released) throw new InvalidHandle('this group has been released');
  }
}
