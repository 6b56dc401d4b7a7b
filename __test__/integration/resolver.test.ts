// The gateway's Resolver against a REAL dnsmasq: dnsmasq serves records in one
// network namespace, the resolver runs in another (a fixture process), joined
// by veth. Needs root, `ip netns` and dnsmasq.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Resolution, ResolverStats } from '../../index.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';

const fixture = join(__dirname, '..', 'fixtures', 'resolver-node.cjs');

function dnsmasqAvailable(): boolean {
  try {
    execFileSync('dnsmasq', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    if (process.env.CI === 'true') throw new Error('resolver integration tests: dnsmasq is not installed');
    console.warn('skipping resolver integration tests: dnsmasq is not installed');
    return false;
  }
}

const run = canRunPrivileged('resolver integration tests') && dnsmasqAvailable();

// Local records (recursive-style answers, TTL from --local-ttl).
const DNS = '198.18.53.1';
// An authoritative-only dnsmasq: negative answers carry an SOA.
const AUTH = '198.18.53.3';
// A UDP socket in the resolver's namespace that never answers.
const SILENT = '127.0.0.1:5399';

describe.runIf(run)('Resolver against a real dnsmasq in a network namespace', () => {
  const lab = new Lab('res');
  const tmp = mkdtempSync(join(tmpdir(), 'dnsnat-resolver-'));
  const log = join(tmp, 'dnsmasq.log');
  let dnsNs: string;
  let gwNs: string;
  let p: JsonLineProcess;
  let nextId = 0;

  async function call<T = Record<string, unknown>>(
    cmd: Record<string, unknown>,
    timeoutMs = 10_000,
  ): Promise<T> {
    const id = ++nextId;
    p.send({ id, ...cmd });
    const line = await p.waitFor<{ id?: number }>((l) => l.id === id, timeoutMs, JSON.stringify(cmd));
    if ('error' in line) throw new Error(`fixture: ${String(line.error)}`);
    return line as T;
  }

  async function create(name: string, options: Record<string, unknown> | undefined) {
    return call<{
      created?: string;
      nameservers: string[];
      timeoutMs: number;
      failed?: string;
      code?: string;
    }>({
      create: { name, options },
    });
  }

  async function resolve(name: string, domain: string): Promise<Resolution> {
    return (await call<{ result: Resolution }>({ resolve: { name, domain } })).result;
  }

  const queriesInLog = (qtype: string, domain: string) =>
    readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.includes(`query[${qtype}] ${domain} `)).length;

  beforeAll(async () => {
    dnsNs = lab.netns('dns');
    gwNs = lab.netns('gw');
    lab.link(dnsNs, [`${DNS}/24`, `${AUTH}/24`, '2001:db8:53::1/64'], gwNs, [
      '198.18.53.2/24',
      '2001:db8:53::2/64',
    ]);
    const common = [
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      '--port=53',
      '--user=root',
      '--group=root',
    ];
    // Daemon mode: dnsmasq returns once its sockets are bound.
    lab.exec(dnsNs, 'dnsmasq', [
      ...common,
      `--listen-address=${DNS},2001:db8:53::1`,
      `--pid-file=${join(tmp, 'local.pid')}`,
      `--log-facility=${log}`,
      '--log-queries',
      '--local=/corp.example/',
      '--local-ttl=77',
      '--host-record=v4only.corp.example,198.18.50.7',
      // Three A and two AAAA, given out of order; numeric order differs from string order.
      '--host-record=multi.corp.example,198.18.50.20,2001:db8:50::10',
      '--host-record=multi.corp.example,198.18.50.3,2001:db8:50::9',
      '--host-record=multi.corp.example,198.18.50.100',
      '--host-record=v6only.corp.example,2001:db8:50::66',
      '--txt-record=txt.corp.example,only text',
      '--cname=alias.corp.example,multi.corp.example,30',
    ]);
    lab.exec(dnsNs, 'dnsmasq', [
      ...common,
      `--listen-address=${AUTH}`,
      `--pid-file=${join(tmp, 'auth.pid')}`,
      `--auth-server=ns.auth.example,${AUTH}`,
      '--auth-zone=auth.example',
      '--auth-ttl=45',
      '--auth-soa=1,hostmaster.auth.example,1200,180,1209600',
      '--host-record=h.auth.example,198.18.51.1',
      '--txt-record=t.auth.example,x',
    ]);
    // `ip netns exec` mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf:
    // the system configuration the default resolver must read.
    mkdirSync(`/etc/netns/${gwNs}`, { recursive: true });
    writeFileSync(`/etc/netns/${gwNs}/resolv.conf`, `nameserver ${DNS}\n`);

    p = lab.node(gwNs, fixture, { silentUdp: SILENT });
    await p.waitFor((l) => l.ready === true, 10_000, 'fixture ready');
    expect((await create('local', { nameservers: [DNS], timeoutMs: 3000 })).created).toBe('local');
    expect((await create('auth', { nameservers: [`${AUTH}:53`], timeoutMs: 3000 })).created).toBe('auth');
  });

  afterAll(() => {
    lab.cleanup();
    if (gwNs) rmSync(`/etc/netns/${gwNs}`, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('a name with only A: ok, IPv4 only, TTL from the record', async () => {
    const r = await resolve('local', 'v4only.corp.example');
    expect(r).toMatchObject({ outcome: 'ok', ipv4: ['198.18.50.7'], ipv6: [], ttlSeconds: 77 });
    expect(r.error).toBeUndefined();
  });

  it('several A and AAAA records come back sorted numerically', async () => {
    const r = await resolve('local', 'multi.corp.example');
    expect(r.outcome).toBe('ok');
    expect(r.ipv4).toEqual(['198.18.50.3', '198.18.50.20', '198.18.50.100']);
    expect(r.ipv6).toEqual(['2001:db8:50::9', '2001:db8:50::10']);
    expect(r.ttlSeconds).toBe(77);
  });

  it('a name with only AAAA is ok with IPv6 only', async () => {
    const r = await resolve('local', 'v6only.corp.example.');
    expect(r).toMatchObject({ outcome: 'ok', ipv4: [], ipv6: ['2001:db8:50::66'], ttlSeconds: 77 });
  });

  it('follows a CNAME and takes the smallest TTL of the chain', async () => {
    const r = await resolve('local', 'alias.corp.example');
    expect(r.outcome).toBe('ok');
    expect(r.ipv4).toEqual(['198.18.50.3', '198.18.50.20', '198.18.50.100']);
    expect(r.ttlSeconds).toBe(30);
  });

  it('a name that does not exist is nxdomain, with the default negative TTL when there is no SOA', async () => {
    const r = await resolve('local', 'nope.corp.example');
    expect(r).toMatchObject({ outcome: 'nxdomain', ipv4: [], ipv6: [], ttlSeconds: 30 });
    expect(r.error).toMatch(/NXDOMAIN/);
  });

  it('a name with only TXT is no-records', async () => {
    const r = await resolve('local', 'txt.corp.example');
    expect(r).toMatchObject({ outcome: 'no-records', ipv4: [], ipv6: [], ttlSeconds: 30 });
  });

  it('negative answers with an SOA take their TTL from it', async () => {
    const ok = await resolve('auth', 'h.auth.example');
    expect(ok).toMatchObject({ outcome: 'ok', ipv4: ['198.18.51.1'], ttlSeconds: 45 });
    expect(await resolve('auth', 'nx.auth.example')).toMatchObject({ outcome: 'nxdomain', ttlSeconds: 45 });
    expect(await resolve('auth', 't.auth.example')).toMatchObject({ outcome: 'no-records', ttlSeconds: 45 });
  });

  it('a REFUSED answer is an error with the reason', async () => {
    const r = await resolve('local', 'elsewhere.example');
    expect(r.outcome).toBe('error');
    expect(r.error).toMatch(/Refused/i);
    expect(r.ttlSeconds).toBe(0);
  });

  it('a malformed domain is an error outcome, not an exception', async () => {
    for (const bad of ['bad..corp.example', 'sp ace.corp.example', '', '198.18.50.7']) {
      const r = await resolve('local', bad);
      expect(r.outcome, bad).toBe('error');
      expect(r.error, bad).toBeTruthy();
    }
  });

  it('without nameservers it reads the system resolv.conf', async () => {
    const c = await create('system', undefined);
    expect(c.nameservers).toEqual([`${DNS}:53`]);
    expect(c.timeoutMs).toBe(10_000);
    expect(await resolve('system', 'v4only.corp.example')).toMatchObject({
      outcome: 'ok',
      ipv4: ['198.18.50.7'],
    });
  });

  it('asks over IPv6 when given an IPv6 nameserver with a port', async () => {
    expect((await create('v6', { nameservers: ['[2001:db8:53::1]:53'] })).nameservers).toEqual([
      '[2001:db8:53::1]:53',
    ]);
    const r = await resolve('v6', 'multi.corp.example');
    expect(r.ipv6).toEqual(['2001:db8:50::9', '2001:db8:50::10']);
  });

  it('every call reaches the nameserver: no cache in the resolver', async () => {
    const before = queriesInLog('A', 'v4only.corp.example');
    await resolve('local', 'v4only.corp.example');
    await resolve('local', 'v4only.corp.example');
    expect(queriesInLog('A', 'v4only.corp.example') - before).toBe(2);
  });

  it('a nameserver that never answers times out at the deadline', async () => {
    await create('silent', { nameservers: [SILENT], timeoutMs: 400 });
    const r = await resolve('silent', 'v4only.corp.example');
    expect(r).toMatchObject({ outcome: 'timeout', ipv4: [], ipv6: [], ttlSeconds: 0 });
    expect(r.elapsedMs).toBeGreaterThanOrEqual(390);
    expect(r.elapsedMs).toBeLessThan(2000);
    const s = await call<{ stats: ResolverStats; silentSeen: number }>({ stats: 'silent' });
    expect(s.silentSeen).toBeGreaterThanOrEqual(2);
    expect(s.stats).toMatchObject({ started: 1, timeout: 1, inFlight: 0 });
  });

  it('beyond maxInFlight a resolution is refused at once with "busy"', async () => {
    await create('narrow', { nameservers: [SILENT], timeoutMs: 600, maxInFlight: 2 });
    const { results } = await call<{ results: Resolution[] }>({
      burst: { name: 'narrow', domains: ['a.example', 'b.example', 'c.example', 'd.example', 'e.example'] },
    });
    expect(results.map((r) => r.outcome)).toEqual(['timeout', 'timeout', 'error', 'error', 'error']);
    for (const r of results.slice(2)) {
      expect(r.error).toBe('busy');
      expect(r.elapsedMs).toBeLessThan(300);
    }
    const { stats } = await call<{ stats: ResolverStats }>({ stats: 'narrow' });
    expect(stats).toMatchObject({ started: 2, busy: 3, timeout: 2, inFlight: 0 });
    // The permits came back: the next one runs.
    expect((await resolve('narrow', 'f.example')).outcome).toBe('timeout');
  });

  it('counts outcomes', async () => {
    const { stats } = await call<{ stats: ResolverStats }>({ stats: 'local' });
    expect(stats.ok).toBeGreaterThanOrEqual(5);
    expect(stats.nxdomain).toBe(1);
    expect(stats.noRecords).toBe(1);
    expect(stats.error).toBe(5);
    expect(stats.busy).toBe(0);
  });

  it('rejects bad options with InvalidArg', async () => {
    for (const options of [
      { timeoutMs: 0 },
      { maxInFlight: 0 },
      { nameservers: [] },
      { nameservers: ['dns'] },
    ]) {
      const c = await create('bad', options);
      expect(c.created, JSON.stringify(options)).toBeUndefined();
      expect(c.code).toBe('InvalidArg');
    }
  });
});
