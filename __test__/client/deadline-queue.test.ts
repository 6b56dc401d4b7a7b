import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeadlineQueue, DeadlineSlot } from '../../ts/common/deadline-queue.js';

function drainAll<T>(queue: DeadlineQueue<T>, now = Number.POSITIVE_INFINITY): T[] {
  const out: T[] = [];
  for (let v = queue.popDue(now); v !== undefined; v = queue.popDue(now)) out.push(v);
  return out;
}

describe('DeadlineQueue', () => {
  it('an empty queue has no earliest deadline and nothing due', () => {
    const queue = new DeadlineQueue<string>();
    expect(queue.earliest()).toBeUndefined();
    expect(queue.popDue(Number.POSITIVE_INFINITY)).toBeUndefined();
    expect(queue.size).toBe(0);
  });

  it('pops values in deadline order and only those due', () => {
    const queue = new DeadlineQueue<string>();
    for (const [v, at] of [
      ['c', 30],
      ['a', 10],
      ['d', 40],
      ['b', 20],
    ] as const) {
      queue.schedule(new DeadlineSlot(v), at);
    }
    expect(queue.earliest()).toBe(10);
    expect(drainAll(queue, 25)).toEqual(['a', 'b']);
    expect(queue.earliest()).toBe(30);
    expect(queue.size).toBe(2);
  });

  it('values with the same deadline come out in scheduling order', () => {
    const queue = new DeadlineQueue<number>();
    for (let i = 0; i < 20; i++) queue.schedule(new DeadlineSlot(i), 5);
    expect(drainAll(queue)).toEqual([...Array(20).keys()]);
  });

  it('rescheduling moves a slot instead of adding a second copy', () => {
    const queue = new DeadlineQueue<string>();
    const a = new DeadlineSlot('a');
    const b = new DeadlineSlot('b');
    queue.schedule(a, 10);
    queue.schedule(b, 20);
    queue.schedule(a, 30);
    expect(queue.size).toBe(2);
    expect(drainAll(queue)).toEqual(['b', 'a']);
    queue.schedule(a, 30);
    queue.schedule(b, 40);
    queue.schedule(b, 5);
    expect(drainAll(queue)).toEqual(['b', 'a']);
  });

  it('cancel removes a slot from anywhere and is a no-op for an unscheduled slot', () => {
    const queue = new DeadlineQueue<number>();
    const slots = [...Array(10).keys()].map((i) => new DeadlineSlot(i));
    slots.forEach((s, i) => {
      queue.schedule(s, 100 - i);
    });
    queue.cancel(slots[4] as DeadlineSlot<number>);
    queue.cancel(slots[4] as DeadlineSlot<number>);
    queue.cancel(new DeadlineSlot(99));
    expect(slots[4]?.scheduled).toBe(false);
    expect(drainAll(queue)).toEqual([9, 8, 7, 6, 5, 3, 2, 1, 0]);
  });

  it('behaves like a sorted list under any sequence of schedule, cancel and pop', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('schedule' as const),
        slot: fc.nat(15),
        at: fc.integer({ min: 0, max: 50 }),
      }),
      fc.record({ kind: fc.constant('cancel' as const), slot: fc.nat(15) }),
      fc.record({ kind: fc.constant('pop' as const), now: fc.integer({ min: 0, max: 50 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const queue = new DeadlineQueue<number>();
        const slots = [...Array(16).keys()].map((i) => new DeadlineSlot(i));
        // Model: value → [at, order]; the earliest (at, order) pops first.
        const model = new Map<number, [number, number]>();
        let order = 0;
        for (const o of ops) {
          if (o.kind === 'schedule') {
            queue.schedule(slots[o.slot] as DeadlineSlot<number>, o.at);
            model.set(o.slot, [o.at, order++]);
          } else if (o.kind === 'cancel') {
            queue.cancel(slots[o.slot] as DeadlineSlot<number>);
            model.delete(o.slot);
          } else {
            const sorted = [...model.entries()].sort((x, y) => x[1][0] - y[1][0] || x[1][1] - y[1][1]);
            const head = sorted[0];
            const expected = head !== undefined && head[1][0] <= o.now ? head[0] : undefined;
            expect(queue.popDue(o.now)).toBe(expected);
            if (expected !== undefined) model.delete(expected);
          }
          expect(queue.size).toBe(model.size);
          const min = Math.min(...[...model.values()].map((v) => v[0]));
          expect(queue.earliest()).toBe(model.size === 0 ? undefined : min);
        }
      }),
    );
  });

  it('each operation costs O(log n) comparisons: at most 2·log2(n) + 2 with 100,000 slots', () => {
    const n = 100_000;
    const queue = new DeadlineQueue<number>();
    const slots = [...Array(n).keys()].map((i) => new DeadlineSlot(i));
    // A pseudo-random permutation of deadlines, so the heap is not trivially sorted.
    slots.forEach((s, i) => {
      queue.schedule(s, (i * 7_919) % n);
    });
    const bound = 2 * Math.ceil(Math.log2(n)) + 2;
    const measure = (fn: () => void): number => {
      const before = queue.comparisons;
      fn();
      return queue.comparisons - before;
    };
    let worst = 0;
    for (let i = 0; i < 1_000; i++) {
      const slot = slots[(i * 104_729) % n] as DeadlineSlot<number>;
      worst = Math.max(
        worst,
        measure(() => queue.schedule(slot, (i * 31) % (2 * n))),
      );
      worst = Math.max(
        worst,
        measure(() => queue.popDue(Number.POSITIVE_INFINITY)),
      );
      worst = Math.max(
        worst,
        measure(() => queue.cancel(slots[(i * 7) % n] as DeadlineSlot<number>)),
      );
    }
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(bound);
  });
});
