// Opening a file that root is about to execute, so that what runs is what was checked. A file is
// trusted when nobody but root could have written it or put it where it is:
//   - it is a regular file, not a symbolic link (stat follows links, so a link owned by anyone to
//     root's /bin/sh would pass a check of its target), owned by root and writable by no one else;
//   - every directory above it, up to /, and above the real directory too where a link leads there,
//     is owned by root and writable by no one else — or is root's and sticky (as /tmp is): there no
//     one else may rename or remove root's entries, so nothing root put there can be swapped;
//   - the file opened (O_NOFOLLOW) is the very file checked (same device and inode), and the caller
//     executes that open descriptor (/proc/self/fd/N), never the path again: no check-then-exec race.
import { constants, type Stats } from 'node:fs';
import { lstat, open, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export type Trusted = { handle: FileHandle; stats: Stats };
export type Untrusted = { refused: string; missing?: boolean };

const writableByOthers = (s: Stats) => (s.mode & 0o022) !== 0;
const sticky = (s: Stats) => (s.mode & 0o1000) !== 0;
const mode = (s: Stats) => (s.mode & 0o7777).toString(8);

/** Why a directory (or a link on the way) could be changed by someone other than root, if it could. */
function looseDirectory(dir: string, s: Stats): string | undefined {
  if (s.uid !== 0) return `${dir} is owned by uid ${s.uid}, not root`;
  if (s.isSymbolicLink()) return undefined; // a link's own mode means nothing; its directory and its target are checked
  if (!s.isDirectory()) return `${dir} is not a directory`;
  if (writableByOthers(s) && !sticky(s)) return `${dir} is writable by others than root (mode ${mode(s)})`;
  return undefined;
}

/** `dir` and every directory above it, up to /. */
function chain(dir: string): string[] {
  const dirs = [dir];
  while (dirs.at(-1) !== path.dirname(dirs.at(-1)!)) dirs.push(path.dirname(dirs.at(-1)!));
  return dirs;
}

/** The file opened for reading and executing, or why it is not trusted. The caller closes the handle. */
export async function openTrusted(file: string): Promise<Trusted | Untrusted> {
  const absolute = path.resolve(file);
  let link: Stats;
  try {
    link = await lstat(absolute);
  } catch (err) {
    return { refused: `${absolute} cannot be read: ${(err as Error).message}`, missing: (err as NodeJS.ErrnoException).code === 'ENOENT' };
  }
  if (link.isSymbolicLink()) return { refused: `${absolute} is a symbolic link` };
  if (!link.isFile()) return { refused: `${absolute} is not a regular file` };
  if (link.uid !== 0 || writableByOthers(link)) {
    return { refused: `${absolute} must be owned by root and writable by no one else (owner uid ${link.uid}, mode ${mode(link)})` };
  }
  const lexical = chain(path.dirname(absolute));
  const real = chain(await realpath(path.dirname(absolute)).catch(() => path.dirname(absolute)));
  for (const dir of new Set([...lexical, ...real])) {
    const s = await lstat(dir).catch(() => undefined);
    const why = s ? looseDirectory(dir, s) : `${dir} cannot be read`;
    if (why) return { refused: why };
  }
  let handle: FileHandle;
  try {
    handle = await open(absolute, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    return { refused: `${absolute} cannot be opened: ${(err as Error).message}` };
  }
  const stats = await handle.stat();
  if (stats.dev !== link.dev || stats.ino !== link.ino || stats.uid !== 0 || writableByOthers(stats)) {
    await handle.close();
    return { refused: `${absolute} changed while it was checked` };
  }
  return { handle, stats };
}
