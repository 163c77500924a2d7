// Writing a file so that a crash leaves the old content or the new, never a mix: write a temporary
// file beside it, fsync it, rename it over the old one, fsync the directory.
import { open, rename } from 'node:fs/promises';
import path from 'node:path';

let sequence = 0;

export async function atomicWrite(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  // Unique per call: two writes of one file in flight must not share (and rename away) one temporary.
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${++sequence}.tmp`);
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
