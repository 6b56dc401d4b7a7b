// Bounded logging: a client that can make the gateway log one line per packet can fill a disk (a flood of
// refused names once wrote 126 MB of log). Each (message, client) pair gets a token bucket; lines over it are
// counted, not written, and the next line that passes carries how many of its kind were suppressed. Pure:
// the caller passes `now`.

export interface LogLimiterOptions {
  /** Lines per second of one kind for one client, on average. Default 5. */
  perSecond?: number;
  /** Lines of one kind for one client at once. Default 20. */
  burst?: number;
  /** Kinds tracked at once; past it the oldest are forgotten. Default 10,000. */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  at: number;
  suppressed: number;
}

export class LogLimiter {
  /** Lines suppressed since start. */
  suppressed = 0;
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly burst: number;
  private readonly maxKeys: number;

  constructor(options: LogLimiterOptions = {}) {
    this.perMs = (options.perSecond ?? 5) / 1000;
    this.burst = options.burst ?? 20;
    this.maxKeys = options.maxKeys ?? 10_000;
  }

  /**
   * Whether a line of `kind` about `subject` may be written at `now`: undefined when not, else the number of
   * such lines suppressed since the last one written (0 usually).
   */
  admit(kind: string, subject: string, now: number): number | undefined {
    const key = `${kind}\n${subject}`;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next().value as string;
        this.buckets.delete(oldest);
      }
      b = { tokens: this.burst, at: now, suppressed: 0 };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
    b.at = now;
    if (b.tokens < 1) {
      b.suppressed++;
      this.suppressed++;
      return undefined;
    }
    b.tokens -= 1;
    const n = b.suppressed;
    b.suppressed = 0;
    return n;
  }
}
