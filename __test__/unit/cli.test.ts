import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageVersion } from '../../ts/version.js';

const cli = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

describe('dnsnat CLI', () => {
  it('--version prints the package version and the native build', () => {
    const out = execFileSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
    expect(out).toContain(`dnsnat ${packageVersion()} (native ${packageVersion()} `);
    expect(out).toMatch(/release, rustc \d/);
  });

  it('--version --json prints machine-readable data', () => {
    const out = execFileSync(process.execPath, [cli, '--version', '--json'], { encoding: 'utf8' });
    const report = JSON.parse(out);
    expect(report.package).toBe(packageVersion());
    expect(report.native.version).toBe(packageVersion());
  });

  it('an unknown command fails with a message, not a stack trace', () => {
    const r = spawnSync(process.execPath, [cli, 'frobnicate'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('frobnicate');
    expect(r.stderr).not.toContain('    at ');
  });
});

describe('dnsnat keygen / pubkey', () => {
  const run = (args: string[], input?: string) =>
    spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input: input ?? '' });

  it('keygen prints a fresh 32-byte base64 key each time', () => {
    const a = run(['keygen']).stdout.trim();
    const b = run(['keygen']).stdout.trim();
    expect(Buffer.from(a, 'base64')).toHaveLength(32);
    expect(a).not.toBe(b);
  });

  it('pubkey of keygen --json output matches its public key', () => {
    const pair = JSON.parse(run(['--json', 'keygen']).stdout);
    expect(run(['pubkey'], `${pair.privateKey}\n`).stdout.trim()).toBe(pair.publicKey);
  });

  it('pubkey rejects a malformed key with a message naming the input', () => {
    const r = run(['pubkey'], 'not-a-key\n');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('stdin: private key: expected a base64 WireGuard key');
  });

  it('agrees with wg(8) both ways when wireguard-tools is installed', () => {
    const wg = spawnSync('wg', ['genkey'], { encoding: 'utf8' });
    if (wg.error) {
      if (process.env.CI === 'true') throw new Error('wg (wireguard-tools) must be installed under CI');
      console.warn('skipping wg interop: wireguard-tools not installed');
      return;
    }
    const priv = wg.stdout.trim();
    const theirs = spawnSync('wg', ['pubkey'], { encoding: 'utf8', input: `${priv}\n` }).stdout.trim();
    expect(run(['pubkey'], `${priv}\n`).stdout.trim()).toBe(theirs);
    const ours = run(['keygen']).stdout.trim();
    const pub = spawnSync('wg', ['pubkey'], { encoding: 'utf8', input: `${ours}\n` });
    expect(pub.status).toBe(0);
    expect(run(['pubkey'], `${ours}\n`).stdout.trim()).toBe(pub.stdout.trim());
  });
});
