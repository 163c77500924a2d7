// docs/benchmarks.md is written by more than one script: `npm run bench` writes the file, and
// `npm run fleet` (minutes of a simulated fleet) owns one section of it, kept between markers so that
// each rewrites only its own figures.
import { readFile, writeFile } from 'node:fs/promises';

const start = (name: string) => `<!-- ${name}: written by npm run ${name} -->`;
const end = (name: string) => `<!-- end ${name} -->`;

/** The section `name` of the file as it stands (markers included), or '' when there is none. */
export async function keptSection(file: string, name: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const from = text.indexOf(start(name));
  const to = text.indexOf(end(name));
  return from >= 0 && to > from ? text.slice(from, to + end(name).length) : '';
}

/** Replace the section `name` with `body` (appended at the end when the file has none). */
export async function writeSection(file: string, name: string, body: string): Promise<void> {
  const text = await readFile(file, 'utf8');
  const section = `${start(name)}\n${body.trim()}\n${end(name)}`;
  const kept = await keptSection(file, name);
  await writeFile(file, kept ? text.replace(kept, section) : `${text.trimEnd()}\n\n${section}\n`);
}
