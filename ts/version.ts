import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import native, { type BuildInfo } from './native.js';

/** Version of the npm package, read from its own package.json. */
export function packageVersion(): string {
  // ts/ and dist/ both sit one level below the package root.
  const pkg: unknown = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'));
  if (typeof pkg !== 'object' || pkg === null || typeof (pkg as { version?: unknown }).version !== 'string') {
    throw new Error(`${join(__dirname, '..', 'package.json')}: field "version": expected a string`);
  }
  return (pkg as { version: string }).version;
}

export interface VersionReport {
  package: string;
  native: BuildInfo;
  node: string;
}

export function versionReport(): VersionReport {
  return { package: packageVersion(), native: native.buildInfo(), node: process.version };
}

/** One line for humans: `dnsnat 0.1.0 (native 0.1.0 x86_64-unknown-linux-gnu release, rustc …; node v20…)`. */
export function formatVersion(report: VersionReport): string {
  const n = report.native;
  return `dnsnat ${report.package} (native ${n.version} ${n.target} ${n.profile}, ${n.rustc}; node ${report.node})`;
}
