// `manageDns`: the client points resolv.conf at its stub and restores it on
// exit. After a crash (SIGKILL) the next start puts the original back before
// anything else (with or without a state file; a symbolic link comes back as
// the same link), keeps the real upstream, and restores again on its exit. A
// corrupt state file is moved aside and the client starts anyway.
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BACKUP_DIR } from '../../ts/client/managed-dns.js';
import native from '../../ts/native.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';
import { fixtures } from '../support/topology.js';

const run = canRunPrivileged('manageDns tests');
const cli = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const ORIGINAL = "# the machine's own\nnameserver 198.18.0.1\nsearch corp.example\n";
/** A device name of this test only: the record without a state file is named after it. */
const DEVICE = `mdns${process.pid % 10000}`;

describe.runIf(run)('client manageDns', () => {
  const lab = new Lab('mdns');
  let c = '';
  let dir = '';
  let resolvConf = '';
  let gatewayKey = '';
  let privateKey = '';

  function writeConfig(extra: string[]): string {
    const file = join(dir, 'client.yaml');
    writeFileSync(
      file,
      [
        `privateKey: ${privateKey}`,
        'tunnel: { ipv4: 100.64.0.2 }',
        'manageDns: true',
        `device: ${DEVICE}`,
        `statusSocket: ${join(dir, 'client.sock')}`,
        ...extra,
        'gateways:',
        `  - { id: gw1, endpoint: "198.18.0.1:51820", publicKey: ${gatewayKey} }`,
        'resources:',
        '  - { id: web, pattern: "*.corp.example", gateway: gw1 }',
        '',
      ].join('\n'),
    );
    return file;
  }
  const withStateFile = () => writeConfig([`stateFile: ${join(dir, 'state.json')}`]);

  const start = () =>
    lab.node(c, join(fixtures, 'daemon.cjs'), { args: ['client', '-c', join(dir, 'client.yaml')] });
  async function ready(p: JsonLineProcess): Promise<number> {
    const { pid } = await p.waitFor<{ pid?: number }>((l) => typeof l.pid === 'number');
    await p.waitFor((l) => (l as { msg?: string }).msg === 'client started', 20_000, 'client started');
    lab.exec(c, process.execPath, [cli, 'status', '--socket', join(dir, 'client.sock')]);
    return pid as number;
  }
  async function kill(p: JsonLineProcess, signal: NodeJS.Signals): Promise<void> {
    const { pid } = await p.waitFor<{ pid?: number }>((l) => typeof l.pid === 'number');
    process.kill(pid as number, signal);
    await p.waitFor((l) => (l as { exited?: unknown }).exited !== undefined, 10_000, `client ${signal}`);
  }
  const logged = (p: JsonLineProcess, msg: string) =>
    p.lines.find((l) => (l as { msg?: string }).msg === msg) as Record<string, unknown> | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dnsnat-mdns-'));
    c = lab.netns('c');
    lab.link(c, ['198.18.0.2/24'], lab.netns('g'), ['198.18.0.1/24']);
    // `ip netns exec` bind-mounts this file over /etc/resolv.conf in the namespace.
    mkdirSync(join('/etc/netns', c), { recursive: true });
    resolvConf = join('/etc/netns', c, 'resolv.conf');
    writeFileSync(resolvConf, ORIGINAL);
    privateKey = native.generateKeypair().privateKey;
    gatewayKey = native.generateKeypair().publicKey;
  });

  afterAll(() => {
    lab.cleanup();
    if (c) rmSync(join('/etc/netns', c), { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
    rmSync(join(DEFAULT_BACKUP_DIR, `${DEVICE}.resolv-conf`), { force: true });
  });

  it('points resolv.conf at the stub while running and restores it on SIGTERM', async () => {
    withStateFile();
    const p = start();
    await ready(p);
    const managed = readFileSync(resolvConf, 'utf8');
    expect(managed).toContain('nameserver 100.100.111.1');
    expect(managed).toContain('search corp.example');
    expect(managed).not.toContain('198.18.0.1');
    // The state file and the backup record are private.
    expect(statSync(join(dir, 'state.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state.json.resolv-conf')).mode & 0o777).toBe(0o600);
    await kill(p, 'SIGTERM');
    expect(readFileSync(resolvConf, 'utf8')).toBe(ORIGINAL);
    expect(existsSync(join(dir, 'state.json.resolv-conf'))).toBe(false);
  });

  it('after a crash, the next start restores the original, keeps the real upstream and restores on exit', async () => {
    withStateFile();
    const first = start();
    await ready(first);
    await kill(first, 'SIGKILL');
    // The crash left resolv.conf pointing at the stub.
    expect(readFileSync(resolvConf, 'utf8')).toContain('nameserver 100.100.111.1');
    const second = start();
    await ready(second);
    expect(logged(second, 'resolv.conf restored after a crash')).toBeDefined();
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    expect(state.upstreamDns).toEqual(['198.18.0.1']);
    expect(logged(second, 'client started')?.upstream).toEqual(['198.18.0.1']);
    await kill(second, 'SIGTERM');
    expect(readFileSync(resolvConf, 'utf8')).toBe(ORIGINAL);
  });

  it('without a state file, SIGKILL then start: resolv.conf is back (from the record under /var/lib/dnsnat)', async () => {
    writeConfig([]);
    const record = join(DEFAULT_BACKUP_DIR, `${DEVICE}.resolv-conf`);
    const first = start();
    await ready(first);
    await kill(first, 'SIGKILL');
    expect(readFileSync(resolvConf, 'utf8')).toContain('nameserver 100.100.111.1');
    expect(JSON.parse(readFileSync(record, 'utf8')).original).toEqual({
      kind: 'file',
      text: ORIGINAL,
      mode: expect.any(Number),
    });
    const second = start();
    await ready(second);
    expect(logged(second, 'resolv.conf restored after a crash')).toBeDefined();
    expect(logged(second, 'client started')?.upstream).toEqual(['198.18.0.1']);
    await kill(second, 'SIGTERM');
    expect(readFileSync(resolvConf, 'utf8')).toBe(ORIGINAL);
    expect(existsSync(record)).toBe(false);
  });

  it('a symlinked resolv.conf comes back as the same link after SIGKILL and after a clean stop', async () => {
    // systemd-resolved's layout: /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf.
    const etc = join(dir, 'etc');
    const target = join(dir, 'run', 'stub-resolv.conf');
    mkdirSync(etc, { recursive: true });
    mkdirSync(join(dir, 'run'), { recursive: true });
    writeFileSync(target, ORIGINAL);
    const link = join(etc, 'resolv.conf');
    symlinkSync('../run/stub-resolv.conf', link);
    writeConfig([`stateFile: ${join(dir, 'state.json')}`, `resolvConf: ${link}`]);

    const first = start();
    await ready(first);
    expect(lstatSync(link).isSymbolicLink()).toBe(false);
    expect(readFileSync(link, 'utf8')).toContain('nameserver 100.100.111.1');
    expect(readFileSync(target, 'utf8')).toBe(ORIGINAL); // the link's target is never written
    await kill(first, 'SIGKILL');
    expect(lstatSync(link).isSymbolicLink()).toBe(false);

    const second = start();
    await ready(second);
    expect(logged(second, 'resolv.conf restored after a crash')?.original).toBe('symlink');
    expect(readFileSync(link, 'utf8')).toContain('nameserver 100.100.111.1');
    await kill(second, 'SIGTERM');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('../run/stub-resolv.conf');
    expect(readFileSync(target, 'utf8')).toBe(ORIGINAL);
  });

  it('a corrupt state file is moved aside with a warning, and the client starts fresh', async () => {
    withStateFile();
    writeFileSync(join(dir, 'state.json'), '{"version": 1, "proxyIpTable": 7, trailing garbage');
    const p = start();
    await ready(p);
    const warning = logged(p, 'state file is corrupt; moved aside, starting fresh (proxy IPs may renumber)');
    expect(warning?.problem).toMatch(/state\.json: not JSON/);
    const aside = readdirSync(dir).filter((f) => f.startsWith('state.json.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(dir, aside[0] as string), 'utf8')).toContain('trailing garbage');
    // The fresh state was written in its place.
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).version).toBe(1);
    await kill(p, 'SIGTERM');
    expect(readFileSync(resolvConf, 'utf8')).toBe(ORIGINAL);
  });
});
