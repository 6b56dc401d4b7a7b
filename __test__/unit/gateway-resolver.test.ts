// The TypeScript wrapper of the gateway's resolver, without privileges: typed
// errors for bad options, failures as outcomes, the deadline and the busy
// refusal against a local UDP socket that never answers. Real answers are
// covered by __test__/integration/resolver.test.ts (dnsmasq in a namespace).
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GatewayResolver,
  hasAddresses,
  isBusy,
  RESOLVER_BUSY,
  type Resolution,
  ResolverError,
} from '../../ts/index.js';

describe('GatewayResolver', () => {
  let silent: Socket;
  let silentAddr: string;
  let queries = 0;

  beforeAll(async () => {
    silent = createSocket('udp4');
    silent.on('message', () => {
      queries += 1;
    });
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    silentAddr = `127.0.0.1:${silent.address().port}`;
  });

  afterAll(() => silent.close());

  it.each([
    [{ timeoutMs: 0 }, /timeoutMs/],
    [{ timeoutMs: 1.5 }, /timeoutMs/],
    [{ maxInFlight: 0 }, /maxInFlight/],
    [{ nameservers: [] }, /empty/],
    [{ nameservers: ['dns.example'] }, /dns\.example/],
    [{ nameservers: ['10.0.0.1:0'] }, /port 0/],
    [{ timeoutMs: 7_200_000 }, /timeoutMs/],
  ])('rejects %j with a ResolverError invalid-options', async (options, message) => {
    const err = await GatewayResolver.create(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResolverError);
    expect((err as ResolverError).code).toBe('invalid-options');
    expect((err as ResolverError).message).toMatch(message);
  });

  it('keeps the given nameservers and deadline', async () => {
    const r = await GatewayResolver.create({
      nameservers: ['192.0.2.53', '[2001:db8::53]:5300'],
      timeoutMs: 1234,
    });
    expect(r.nameservers).toEqual(['192.0.2.53:53', '[2001:db8::53]:5300']);
    expect(r.timeoutMs).toBe(1234);
  });

  it('a malformed domain resolves to outcome error, never a rejection', async () => {
    const r = await GatewayResolver.create({ nameservers: [silentAddr], timeoutMs: 200 });
    const before = queries;
    const res = await r.resolve('a..example');
    expect(res).toMatchObject({ outcome: 'error', ipv4: [], ipv6: [], ttlSeconds: 0 });
    expect(res.error).toMatch(/empty label/);
    expect(queries).toBe(before);
    expect(hasAddresses(res)).toBe(false);
  });

  it('times out at the deadline when the nameserver never answers', async () => {
    const r = await GatewayResolver.create({ nameservers: [silentAddr], timeoutMs: 300 });
    const t0 = Date.now();
    const res = await r.resolve('quiet.example');
    expect(res.outcome).toBe('timeout');
    expect(res.elapsedMs).toBeGreaterThanOrEqual(290);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(queries).toBeGreaterThan(0);
    expect(r.stats()).toMatchObject({ started: 1, timeout: 1, inFlight: 0, busy: 0 });
  });

  it('refuses beyond maxInFlight with "busy" and recovers afterwards', async () => {
    const r = await GatewayResolver.create({ nameservers: [silentAddr], timeoutMs: 300, maxInFlight: 1 });
    const first = r.resolve('one.example');
    expect(r.stats().inFlight).toBe(1);
    const second: Resolution = await r.resolve('two.example');
    expect(second).toMatchObject({ outcome: 'error', error: RESOLVER_BUSY });
    expect(isBusy(second)).toBe(true);
    expect((await first).outcome).toBe('timeout');
    expect(isBusy(await r.resolve('three.example'))).toBe(false);
    expect(r.stats()).toMatchObject({ started: 2, busy: 1, inFlight: 0 });
  });

  it('hasAddresses and isBusy read outcomes', () => {
    const base = { ipv4: [], ipv6: [], ttlSeconds: 0, elapsedMs: 0 };
    expect(hasAddresses({ ...base, outcome: 'ok', ipv4: ['192.0.2.1'] })).toBe(true);
    expect(hasAddresses({ ...base, outcome: 'no-records' })).toBe(false);
    expect(isBusy({ ...base, outcome: 'error', error: 'A: timed out' })).toBe(false);
  });
});
