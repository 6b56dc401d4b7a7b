// The resolv.conf backup record, on plain files in a temporary folder: what a start after a crash restores,
// and what it refuses to trust.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManagedDns, repairAfterCrash } from '../../ts/client/managed-dns.js';

const ORIGINAL = 'nameserver 192.0.2.53\nsearch corp.example\n';

describe('the resolv.conf backup record', () => {
  let dir = '';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dnsnat-managed-dns-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a crash leaves the record; the next start restores the original with its permission bits, never more', () => {
    const conf = join(dir, 'resolv.conf');
    const record = join(dir, 'state.json.resolv-conf');
    writeFileSync(conf, ORIGINAL, { mode: 0o644 });
    ManagedDns.takeOver(conf, record, () => '');
    expect(readFileSync(conf, 'utf8')).toContain('nameserver 100.100.111.1');
    expect(statSync(conf).mode & 0o777).toBe(0o644);
    // A record that asks for setuid bits gets the permission bits only.
    const r = JSON.parse(readFileSync(record, 'utf8'));
    r.original.mode = 0o4755;
    writeFileSync(record, JSON.stringify(r));
    expect(repairAfterCrash(record, conf)).toEqual({ kind: 'repaired', path: conf, original: 'file' });
    expect(readFileSync(conf, 'utf8')).toBe(ORIGINAL);
    expect(statSync(conf).mode & 0o7777).toBe(0o755);
    expect(repairAfterCrash(record, conf)).toEqual({ kind: 'none' });
  });

  it('a record naming another file than the one this client manages is not applied', () => {
    const conf = join(dir, 'resolv.conf');
    const other = join(dir, 'other.conf');
    const record = join(dir, 'state.json.resolv-conf');
    writeFileSync(other, ORIGINAL);
    ManagedDns.takeOver(other, record, () => '');
    const managed = readFileSync(other, 'utf8');
    const outcome = repairAfterCrash(record, conf);
    expect(outcome.kind).toBe('left');
    expect(readFileSync(other, 'utf8')).toBe(managed);
  });

  it('a resolv.conf changed since dnsnat wrote it is left as it is', () => {
    const conf = join(dir, 'resolv.conf');
    const record = join(dir, 'state.json.resolv-conf');
    writeFileSync(conf, ORIGINAL);
    ManagedDns.takeOver(conf, record, () => '');
    writeFileSync(conf, 'nameserver 198.51.100.1\n');
    expect(repairAfterCrash(record, conf)).toMatchObject({ kind: 'left' });
    expect(readFileSync(conf, 'utf8')).toBe('nameserver 198.51.100.1\n');
  });
});
