// Where a source is up to (a kernel log sequence number, a file position, a journal cursor), kept as a
// small JSON file in the state directory so a restart resumes instead of repeating or skipping.
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { atomicWrite } from '../atomic-write.js';

export async function readState<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined; // none yet, or unreadable: start as if new
  }
}

export async function writeState(file: string, state: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await atomicWrite(file, JSON.stringify(state));
}
