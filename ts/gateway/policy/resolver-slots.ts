// The resolver's slots, as the policy sees them: resolutions in flight (at most `maxInFlight`, each with a
// deadline) and domains waiting for a slot (at most `maxQueued`, oldest first). One resolution per domain at
// a time; a second request for a domain that is running or waiting joins it. The slots know domains by name
// and set `DomainState.inflight`; everything else about a domain (answers, statuses, who pays) is the
// policy's.
import type { DomainState } from './types.js';

export class ResolverSlots {
  /** id → domain, in launch order; deadlines are launch time + a constant, so the first is the earliest. */
  private readonly inflight = new Map<number, string>();
  /** Domains waiting for a slot, oldest first. */
  private readonly queue = new Set<string>();
  private nextId = 0;

  constructor(
    private readonly maxInFlight: number,
    private readonly maxQueued: number,
    private readonly timeoutMs: number,
  ) {}

  get inFlight(): number {
    return this.inflight.size;
  }

  get waiting(): number {
    return this.queue.size;
  }

  /** Whether `ds` has a resolution running or waiting, which a new request joins. */
  pending(ds: DomainState): boolean {
    return ds.inflight !== undefined || this.queue.has(ds.domain);
  }

  hasFreeSlot(): boolean {
    return this.inflight.size < this.maxInFlight;
  }

  /** Puts `domain` in the queue if there is room. */
  enqueue(domain: string): boolean {
    if (this.queue.size >= this.maxQueued) return false;
    this.queue.add(domain);
    return true;
  }

  /** Takes `domain` out of the queue; false if it was not waiting. */
  dequeue(domain: string): boolean {
    return this.queue.delete(domain);
  }

  /** Starts a resolution of `ds` now: its id, its deadline on `ds.inflight`. */
  launch(ds: DomainState, now: number): number {
    const id = ++this.nextId;
    ds.inflight = { id, startedAt: now, deadline: now + this.timeoutMs };
    this.inflight.set(id, ds.domain);
    return id;
  }

  /** The domain a resolution id was launched for, if it is still counted. */
  domainOf(id: number): string | undefined {
    return this.inflight.get(id);
  }

  /** The resolution ended (answered, timed out, or its answer came too late): its slot is free. */
  finish(id: number): void {
    this.inflight.delete(id);
  }

  /** Queued domains, oldest first, for as long as slots are free; each is taken out of the queue. */
  *startable(): Generator<string> {
    while (this.inflight.size < this.maxInFlight && this.queue.size > 0) {
      const domain = this.queue.values().next().value as string;
      this.queue.delete(domain);
      yield domain;
    }
  }

  /** The earliest deadline of a running resolution. */
  earliestDeadline(domainOf: (domain: string) => DomainState | undefined): number | undefined {
    for (const domain of this.inflight.values()) {
      const deadline = domainOf(domain)?.inflight?.deadline;
      if (deadline !== undefined) return deadline;
    }
    return undefined;
  }

  /**
   * The running resolutions whose deadline has passed, earliest first; ids whose domain moved on are freed on
   * the way. The caller finishes each one it is given.
   */
  *overdue(now: number, domainOf: (domain: string) => DomainState | undefined): Generator<DomainState> {
    for (const [id, domain] of this.inflight) {
      const ds = domainOf(domain);
      if (!ds?.inflight || ds.inflight.id !== id) {
        this.inflight.delete(id);
        continue;
      }
      if (ds.inflight.deadline > now) return;
      yield ds;
    }
  }
}
