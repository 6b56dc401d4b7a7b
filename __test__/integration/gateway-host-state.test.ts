// What `masquerade: true` does to the host, and that a SIGKILL cannot make it permanent: the real
// `dnsnat gateway` in a namespace whose forwarding is off, killed with SIGKILL, then started and stopped
// again. Root.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';

const fixtures = join(__dirname, '..', 'fixtures');
const run = canRunPrivileged('gateway host-state suite');

describe.runIf(run)('gateway host state survives a SIGKILL', () => {
  const lab = new Lab('ghs');
  let g = '';
  let dir = '';
  const recordDir = '/run/dnsnat';

  const forwarding = () =>
    lab.exec(g, 'cat', ['/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding']).trim();
  const ruleset = () => lab.exec(g, 'nft', ['list', 'ruleset']);
  const records = () =>
    existsSync(recordDir) ? readdirSync(recordDir).filter((f) => f.startsWith('gateway-dnsnat-hs-')) : [];

  function start(): JsonLineProcess {
    return lab.node(g, join(fixtures, 'daemon.cjs'), { args: ['gateway', '-c', join(dir, 'gateway.yaml')] });
  }
  async function started(p: JsonLineProcess): Promise<number> {
    const { pid } = await p.waitFor<{ pid: number }>((l) => typeof l.pid === 'number', 10_000, 'pid');
    await p.waitFor<{ msg?: string }>((l) => l.msg === 'gateway started', 15_000, 'gateway started');
    return pid;
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dnsnat-ghs-'));
    g = lab.netns('g');
    const c = lab.netns('c');
    lab.link(c, ['198.18.0.2/24'], g, ['198.18.0.1/24']);
    const kg = native.generateKeypair();
    const kc = native.generateKeypair();
    writeFileSync(
      join(dir, 'gateway.yaml'),
      [
        `privateKey: ${kg.privateKey}`,
        'listen: "0.0.0.0:51820"',
        'tunnel: { ipv4: 100.64.0.1 }',
        'nameservers: [198.18.0.2]',
        'device: dnsnat-hs',
        'masquerade: true',
        'resources: []',
        `clients: [{ id: alice, publicKey: ${kc.publicKey}, tunnelIps: [100.64.0.2], resources: [] }]`,
        '',
      ].join('\n'),
    );
  });

  afterAll(() => {
    lab.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('forwarding on and the table in place while it runs, with a record of the originals', async () => {
    expect(forwarding()).toBe('0\n0');
    const before = records().length;
    const p = start();
    const pid = await started(p);
    expect(forwarding()).toBe('1\n1');
    expect(ruleset()).toMatch(/table inet dnsnat_dnsnat_hs/);
    expect(ruleset()).toMatch(/hook forward/);
    expect(records().length).toBe(before + 1);

    // SIGKILL: nothing of ours runs; the host is left forwarding.
    process.kill(pid, 'SIGKILL');
    await p.exited;
    expect(forwarding()).toBe('1\n1');
    expect(records().length).toBe(before + 1);

    // The next start repairs: it says so, keeps the recorded originals, and a clean stop restores them.
    const q = start();
    await started(q);
    await q.waitFor<{ msg?: string }>(
      (l) => typeof l.msg === 'string' && l.msg.includes('did not stop cleanly'),
      5_000,
      'the repair warning',
    );
    q.child.kill('SIGTERM');
    await q.exited;
    for (let i = 0; i < 20 && forwarding() !== '0\n0'; i++) await sleep(100);
    expect(forwarding()).toBe('0\n0');
    expect(ruleset()).not.toMatch(/dnsnat_dnsnat_hs/);
    expect(records().length).toBe(before);
  }, 60_000);
});
