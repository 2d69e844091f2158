// The topics this client holds: the alias table the broker's TopicAdd frames fill, and the
// value of each subscribed topic, which the next delta applies to. Turns each update frame
// into a whole, checked value to hand on, or into a Refresh to ask for when a delta cannot be
// applied (its checksum failed, or the value it applies to is not the one held). Nothing here
// is silent: every update handed on after a gap says so.
import type { Checksum } from './checksum';
import { applyDelta } from './delta';
import { FRAME_FLAG_RESYNC, UpdateEncoding, type UpdateFrame } from './frames';
import type { TopicPosition } from './messages';
import type { TopicType } from './protocol';

interface TopicAlias {
  path: string;
  type: TopicType;
  epoch: bigint;
}

interface HeldValue {
  value: Uint8Array;
  topicSeq: bigint;
  epoch: bigint;
  held: boolean; // false until a whole value arrives, and again after a failed delta
  awaitingFull: boolean; // a Refresh is out: deltas are useless until the whole value comes
}

export interface TopicValue {
  path: string;
  type: TopicType;
  value: Uint8Array;
  topicSeq: bigint;
  epoch: bigint;
  encoding: UpdateEncoding;
  // Updates between the previous value handed on and this one were missed: the broker
  // resynced after a gap it could not fill, a failed delta was replaced by the whole value,
  // or the topic sequence skipped (a conflated topic, a new epoch).
  gap: boolean;
}

export type UpdateOutcome =
  | { kind: 'deliver'; update: TopicValue }
  // Send a Refresh for `alias`; `refused` says why the delta failed (undefined: it only
  // lacked the value it applies to, a race with a resubscription rather than damage).
  | { kind: 'refresh'; alias: number; path: string; refused?: string }
  | { kind: 'drop' } // nothing to hand on (awaiting the whole value, or nobody wants it)
  | { kind: 'unknownAlias' };

export class TopicCache {
  private readonly aliases = new Map<number, TopicAlias>();
  private readonly values = new Map<string, HeldValue>();

  constructor(
    private readonly checksum: Checksum,
    public maxValueBytes: number,
  ) {}

  addAlias(alias: number, path: string, type: TopicType, epoch: bigint): void {
    this.aliases.set(alias, { path, type, epoch });
  }

  // After a Resync or a new session the broker numbers the topics afresh; values stay held.
  clearAliases(): void {
    this.aliases.clear();
  }

  // `wanted(path)`: whether a subscription still asks for the topic.
  apply(update: UpdateFrame, wanted: (path: string) => boolean): UpdateOutcome {
    const alias = this.aliases.get(update.alias);
    if (!alias) return { kind: 'unknownAlias' };
    if (!wanted(alias.path)) {
      // In flight while the last subscription to it went: forget it, as the broker does.
      this.values.delete(alias.path);
      return { kind: 'drop' };
    }
    let v = this.values.get(alias.path);
    if (!v) {
      v = { value: new Uint8Array(0), topicSeq: 0n, epoch: alias.epoch, held: false, awaitingFull: false };
      this.values.set(alias.path, v);
    }
    let gap = (update.flags & FRAME_FLAG_RESYNC) !== 0;
    let value: Uint8Array;
    if (update.encoding === UpdateEncoding.Delta) {
      if (v.awaitingFull) return { kind: 'drop' };
      let refused: string | undefined;
      let applied: Uint8Array | undefined;
      if (v.held && v.epoch === alias.epoch && v.topicSeq + 1n === update.topicSeq) {
        const result = applyDelta(v.value, update.body, this.maxValueBytes, this.checksum);
        applied = result.value;
        refused = result.error;
      }
      if (!applied) {
        v.held = false;
        v.awaitingFull = true;
        return { kind: 'refresh', alias: update.alias, path: alias.path, refused };
      }
      value = applied;
    } else {
      value = update.body.slice(); // kept: not a view of the message it came in
      // The first whole value after a failed delta closes the gap the failure opened.
      if (v.awaitingFull) gap = true;
      v.awaitingFull = false;
    }
    if (v.held && (v.epoch !== alias.epoch || update.topicSeq > v.topicSeq + 1n)) gap = true;
    v.value = value;
    v.topicSeq = update.topicSeq;
    v.epoch = alias.epoch;
    v.held = true;
    return {
      kind: 'deliver',
      update: {
        path: alias.path,
        type: alias.type,
        value,
        topicSeq: update.topicSeq,
        epoch: alias.epoch,
        encoding: update.encoding,
        gap,
      },
    };
  }

  // Forgets the values of topics no subscription asks for any more.
  forgetUnwanted(wanted: (path: string) => boolean): void {
    for (const path of [...this.values.keys()]) if (!wanted(path)) this.values.delete(path);
  }

  // Where this client is in each topic it holds (those `filter` accepts), for a subscription
  // made again in a new session: it resumes after them.
  positions(filter: (path: string) => boolean = () => true): TopicPosition[] {
    const out: TopicPosition[] = [];
    for (const [path, v] of this.values) if (v.held && filter(path)) out.push({ path, epoch: v.epoch, seq: v.topicSeq });
    return out;
  }

  heldValue(path: string): Uint8Array | undefined {
    const v = this.values.get(path);
    return v?.held ? v.value : undefined;
  }
}
