// `manageDns`: pointing resolv.conf at the stub, and always being able to put
// back what was there, even after a SIGKILL or a power cut.
//
// Before resolv.conf changes, what it was (a file with its text and mode, a
// symbolic link with its target, or nothing) is written to a backup record,
// durably. A clean stop restores it and deletes the record; the next start
// after a crash finds the record and restores it first, if resolv.conf still
// holds what we wrote (a person or another tool may have changed it since;
// that is never overwritten). The record lives beside the state file, or under
// /var/lib/dnsnat/ (not /run: a power cut empties /run but not /etc).
import { lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { replaceWithSymlink, writeFileSafely } from '../common/safe-write.js';
import { isManagedResolvConf, managedResolvConf } from './resolv-conf.js';

export const DEFAULT_BACKUP_DIR = '/var/lib/dnsnat';

export type ResolvConfOriginal =
  | { kind: 'file'; text: string; mode: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'missing' };

interface BackupRecord {
  version: 1;
  /** The resolv.conf this record restores. */
  path: string;
  original: ResolvConfOriginal;
}

/** Where the backup record of a client lives. */
export function backupPath(stateFile: string | undefined, device: string): string {
  return stateFile ? `${stateFile}.resolv-conf` : join(DEFAULT_BACKUP_DIR, `${device}.resolv-conf`);
}

/** What is at `path` now. */
export function captureResolvConf(path: string): ResolvConfOriginal {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw e;
  }
  if (stat.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(path) };
  return { kind: 'file', text: readFileSync(path, 'utf8'), mode: stat.mode & 0o7777 };
}

/** Puts `original` back at `path`. */
export function restoreResolvConf(path: string, original: ResolvConfOriginal): void {
  switch (original.kind) {
    case 'file':
      // Permission bits only: a record never makes a file setuid.
      writeFileSafely(path, original.text, original.mode & 0o777);
      return;
    case 'symlink':
      replaceWithSymlink(path, original.target);
      return;
    case 'missing':
      rmSync(path, { force: true });
      return;
  }
}

function isOriginal(value: unknown): value is ResolvConfOriginal {
  if (typeof value !== 'object' || value === null) return false;
  const o = value as Record<string, unknown>;
  if (o.kind === 'file') return typeof o.text === 'string' && Number.isInteger(o.mode);
  if (o.kind === 'symlink') return typeof o.target === 'string' && o.target.length > 0;
  return o.kind === 'missing';
}

function readRecord(file: string): BackupRecord | { problem: string } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return { problem: (e as Error).message };
  }
  try {
    const v = JSON.parse(text) as Partial<BackupRecord>;
    if (v.version === 1 && typeof v.path === 'string' && isOriginal(v.original)) return v as BackupRecord;
  } catch {
    // Reported below.
  }
  return { problem: 'not a resolv.conf backup record' };
}

/** Whether `path` holds what `manageDns` wrote (a file with our marker). */
function holdsManaged(path: string): boolean {
  const now = captureResolvConf(path);
  return now.kind === 'file' && isManagedResolvConf(now.text);
}

export type RepairOutcome =
  | { kind: 'none' }
  | { kind: 'repaired'; path: string; original: ResolvConfOriginal['kind'] }
  | { kind: 'left'; path: string; why: string };

/**
 * Restores what a crashed run left: if a backup record exists, names the
 * resolv.conf this client manages (`path`) and that file still holds what we
 * wrote, the original goes back. The record is removed either way. A record
 * is a file beside the state file: it is never trusted to name another path.
 */
export function repairAfterCrash(recordFile: string, path: string): RepairOutcome {
  const record = readRecord(recordFile);
  if (record === undefined) return { kind: 'none' };
  if ('problem' in record) {
    renameSync(recordFile, `${recordFile}.corrupt`);
    return { kind: 'left', path: recordFile, why: `${record.problem}; moved to ${recordFile}.corrupt` };
  }
  if (record.path !== path) {
    rmSync(recordFile, { force: true });
    return {
      kind: 'left',
      path: record.path,
      why: `the record is for another file than ${path}; left as it is`,
    };
  }
  if (!holdsManaged(record.path)) {
    rmSync(recordFile, { force: true });
    return { kind: 'left', path: record.path, why: 'changed since dnsnat wrote it; left as it is' };
  }
  restoreResolvConf(record.path, record.original);
  rmSync(recordFile, { force: true });
  return { kind: 'repaired', path: record.path, original: record.original.kind };
}

/** resolv.conf pointed at the stub, and how to give it back. */
export class ManagedDns {
  private constructor(
    readonly path: string,
    private readonly recordFile: string,
    readonly original: ResolvConfOriginal,
  ) {}

  /**
   * Records what `path` holds, then points it at the stub. `fallback` is the
   * original to record when `path` already holds what we wrote and no record
   * says what was there before (a record lost with its disk).
   */
  static takeOver(path: string, recordFile: string, fallback: () => string): ManagedDns {
    let original = captureResolvConf(path);
    if (original.kind === 'file' && isManagedResolvConf(original.text)) {
      original = { kind: 'file', text: fallback(), mode: 0o644 };
    }
    const record: BackupRecord = { version: 1, path, original };
    mkdirSync(dirname(recordFile), { recursive: true, mode: 0o700 });
    writeFileSafely(recordFile, `${JSON.stringify(record)}\n`, 0o600);
    const text = original.kind === 'file' ? original.text : readFollowing(path);
    writeFileSafely(path, managedResolvConf(text), 0o644);
    return new ManagedDns(path, recordFile, original);
  }

  /** Puts the original back and forgets the record. */
  restore(): void {
    restoreResolvConf(this.path, this.original);
    rmSync(this.recordFile, { force: true });
  }
}

/** The text a symbolic link points at, or nothing. */
function readFollowing(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
