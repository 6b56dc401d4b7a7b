// An ordered index of deadlines: an indexed binary min-heap.
//
// Why a heap and why indexed. The NAT state machine must find "every entry whose deadline has passed" without
// looking at entries whose deadline has not, so that the work of one input does not grow with the number of
// tracked domains. A binary heap gives the earliest deadline in O(1) and removes it in O(log n). Each slot
// remembers its own position in the heap, so a slot can be moved (rescheduled) or removed (cancelled) in
// O(log n) as well, without lazy deletion: the heap therefore only ever holds live slots, its size is bounded
// by the number of scheduled slots, and `earliest()` never has to skip stale items.
//
// What must stay true:
// - `slot.pos` is the slot's index in `heap` while it is scheduled, and -1 otherwise; every move in the heap
//   updates it. A slot belongs to at most one queue at a time (the owner keeps one slot per queue).
// - Ordering is by (at, order): `order` is taken from a counter at scheduling time, so two slots with the
//   same deadline come out in the order they were scheduled. That keeps everything built on top of the
//   queue deterministic, which the seeded simulation tests rely on.
// - `comparisons` counts every key comparison. It is a cheap instrument, not a timer: tests use it to show
//   that one operation costs O(log n) comparisons, in a way that would fail for a scan.

/** A handle for one scheduled value; create one per (owner, queue) and reuse it. */
export class DeadlineSlot<T> {
  /** The deadline, valid while `scheduled`. */
  at = 0;
  /** Tie-breaker: scheduling order. */
  order = 0;
  /** Index in the heap, or -1 when not scheduled. */
  pos = -1;

  constructor(readonly value: T) {}

  get scheduled(): boolean {
    return this.pos >= 0;
  }
}

export class DeadlineQueue<T> {
  private readonly heap: DeadlineSlot<T>[] = [];
  private nextOrder = 0;
  /** Number of deadline comparisons performed since construction (an instrument for cost tests). */
  comparisons = 0;

  get size(): number {
    return this.heap.length;
  }

  /** The earliest deadline, or undefined when the queue is empty. */
  earliest(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Schedules `slot` at `at`, or moves it there if it is already scheduled. O(log n). */
  schedule(slot: DeadlineSlot<T>, at: number): void {
    slot.at = at;
    slot.order = this.nextOrder++;
    if (slot.pos < 0) {
      slot.pos = this.heap.length;
      this.heap.push(slot);
      this.siftUp(slot.pos);
    } else {
      // A later `order` can only make the slot "larger" on ties, so both directions must be tried.
      this.siftUp(slot.pos);
      this.siftDown(slot.pos);
    }
  }

  /** Removes `slot` if it is scheduled; a no-op otherwise. O(log n). */
  cancel(slot: DeadlineSlot<T>): void {
    const pos = slot.pos;
    if (pos < 0) return;
    slot.pos = -1;
    const last = this.heap.pop() as DeadlineSlot<T>;
    if (pos === this.heap.length) return; // it was the last element
    this.heap[pos] = last;
    last.pos = pos;
    this.siftUp(pos);
    this.siftDown(last.pos);
  }

  /**
   * Removes and returns the value of the earliest slot if its deadline is at or before `now`, otherwise
   * returns undefined and leaves the queue alone. Callers loop on it to drain everything that is due.
   */
  popDue(now: number): T | undefined {
    const top = this.heap[0];
    if (top === undefined || top.at > now) return undefined;
    this.cancel(top);
    return top.value;
  }

  private less(a: DeadlineSlot<T>, b: DeadlineSlot<T>): boolean {
    this.comparisons++;
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  private siftUp(start: number): void {
    const heap = this.heap;
    const slot = heap[start] as DeadlineSlot<T>;
    let pos = start;
    while (pos > 0) {
      const parentPos = (pos - 1) >> 1;
      const parent = heap[parentPos] as DeadlineSlot<T>;
      if (!this.less(slot, parent)) break;
      heap[pos] = parent;
      parent.pos = pos;
      pos = parentPos;
    }
    heap[pos] = slot;
    slot.pos = pos;
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    const n = heap.length;
    const slot = heap[start] as DeadlineSlot<T>;
    let pos = start;
    for (;;) {
      const left = 2 * pos + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      let childSlot = heap[left] as DeadlineSlot<T>;
      if (right < n) {
        const rightSlot = heap[right] as DeadlineSlot<T>;
        if (this.less(rightSlot, childSlot)) {
          child = right;
          childSlot = rightSlot;
        }
      }
      if (!this.less(childSlot, slot)) break;
      heap[pos] = childSlot;
      childSlot.pos = pos;
      pos = child;
    }
    heap[pos] = slot;
    slot.pos = pos;
  }
}
