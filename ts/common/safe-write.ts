// Replacing a file so that a crash or a hostile directory never leaves a torn
// or misplaced write: a fresh temporary file beside the target (created with
// O_EXCL|O_NOFOLLOW under an unpredictable name, so neither a planted file nor
// a symlink is ever written through), fsync, rename over the target, fsync of
// the directory so the rename itself survives power loss.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

const tempName = (path: string) => `${path}.dnsnat-${process.pid}-${randomBytes(6).toString('hex')}`;

function syncDirectory(path: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the rename has happened.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Renames `tmp` over `path`; a mount point (EBUSY/EXDEV) is rewritten in place by `inPlace`. */
function commit(tmp: string, path: string, inPlace: () => void): void {
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    // resolv.conf in containers and under `ip netns exec` is a bind mount,
    // which cannot be renamed over.
    if (code !== 'EBUSY' && code !== 'EXDEV') throw e;
    inPlace();
    return;
  }
  syncDirectory(path);
}

/** Replaces `path` with `data` atomically and durably; the file gets `mode`. */
export function writeFileSafely(path: string, data: string, mode: number): void {
  const tmp = tempName(path);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    // The mode asked for, whatever the umask (resolv.conf must stay world-readable).
    fchmodSync(fd, mode);
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  commit(tmp, path, () => writeInPlace(path, data));
}

/** Rewrites a file that cannot be replaced (a mount point), then fsyncs it. */
function writeInPlace(path: string, data: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` (a file or a link) with a symbolic link to `target`, atomically. */
export function replaceWithSymlink(path: string, target: string): void {
  const tmp = tempName(path);
  symlinkSync(target, tmp);
  commit(tmp, path, () => {
    throw new Error(`${path}: a mount point cannot become a symbolic link`);
  });
}
