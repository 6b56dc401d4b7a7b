import { describe, expect, it } from 'vitest';
import { packageVersion, runtimeInfo, versionReport } from '../../ts/index.js';

describe('native addon', () => {
  it('reports a build whose version matches the npm package', () => {
    const report = versionReport();
    // Crate and package versions drifting apart would make bug reports lie.
    expect(report.native.version).toBe(packageVersion());
    expect(report.native.target).toMatch(/-linux-(gnu|musl)$/);
    expect(report.native.rustc).toMatch(/^rustc \d+\.\d+/);
  });

  it('resolves an async call on the tokio runtime, not the JS thread', async () => {
    const info = await runtimeInfo(20);
    expect(info.threadName).toBe('dnsnat-rt');
    expect(info.workers).toBeGreaterThanOrEqual(1);
    expect(info.sleptMs).toBe(20);
  });

  it('runs concurrent async calls in parallel on the runtime timer', async () => {
    const started = process.hrtime.bigint();
    const all = await Promise.all(Array.from({ length: 20 }, () => runtimeInfo(200)));
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    expect(all).toHaveLength(20);
    // Twenty 200 ms sleeps done one after another would take 4 s; concurrently,
    // well under that. A loose bound: this checks concurrency, not speed.
    expect(elapsedMs).toBeLessThan(2000);
  });
});
