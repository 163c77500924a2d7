// Files the agent writes must survive a crash at any moment: a crash leaves the old content or the new,
// never a mix. atomicWrite writes a temporary file beside the target, fsyncs it, renames it over the
// target and fsyncs the directory. readState/writeState keep small JSON records (where a source is up
// to, the recovery history) that way, so a restart resumes instead of repeating or skipping.
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

let sequence = 0;

/** The temporary files atomicWrite makes (`.NAME.PID.N.tmp`); one left behind is a write that did not finish. */
export const TEMPORARY_FILE = /^\..+\.\d+\.\d+\.tmp$/;

export async function atomicWrite(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  // Unique per call: two writes of one file in flight must not share (and rename away) one temporary.
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${++sequence}.tmp`);
  try {
    const handle = await open(tmp, 'w', 0o644);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {}); // a full disk must not also leave a half-written temporary behind
    throw err;
  }
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** A JSON record written by writeState; undefined when there is none yet or it cannot be read (start as if new). */
export async function readState<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export async function writeState(file: string, state: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await atomicWrite(file, JSON.stringify(state));
}
