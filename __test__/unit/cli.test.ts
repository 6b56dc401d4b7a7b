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
