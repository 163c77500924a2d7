// Node facts: kernel, container runtime versions, uptime, load, memory, CPUs and the root disk of the
// node the agent runs on — the first thing anyone asks when reading an Abnormal. A fact that cannot be
// read is left out; the collector never fails.
import { execFile } from 'node:child_process';
import { stat, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';
import { evidence } from '../agent/processors/evidence.js';

/** The runtimes whose version is a fact. */
const RUNTIMES = ['containerd', 'runc'] as const;

/** Where PATH finds `binary`, and what identifies that file's content (an upgrade changes it); undefined when it is not there. */
async function located(binary: string): Promise<{ file: string; identity: string } | undefined> {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!path.isAbsolute(dir)) continue;
    const file = path.join(dir, binary);
    const found = await stat(file).catch(() => undefined);
    if (found?.isFile()) return { file, identity: `${file} ${found.dev}:${found.ino} ${found.size} ${found.mtimeMs}` };
  }
  return undefined;
}

/**
 * `BINARY --version`'s first line, or undefined where it is not installed — asked again only when
 * the binary changes (a stat of it per collection instead of a process: `containerd --version` alone
 * costs 80 ms of CPU and holds the event loop while it starts).
 */
function runtimeVersions() {
  const known = new Map<string, { identity: string; version: Promise<string | undefined> }>();
  const versionOf = async (binary: string): Promise<string | undefined> => {
    const where = await located(binary);
    const identity = where?.identity ?? '';
    const last = known.get(binary);
    if (last?.identity === identity) return last.version;
    // Node's own execFile, not execa: loading execa for two version lines costs more CPU and memory
    // than the calls themselves.
    const version = !where ? Promise.resolve(undefined) : new Promise<string | undefined>((resolve) => {
      execFile(where.file, ['--version'], { timeout: 3000, maxBuffer: 64 * 1024, encoding: 'utf8' }, (err, stdout) => {
        resolve(err ? undefined : stdout.split('\n')[0]?.trim() || undefined);
      });
    });
    known.set(binary, { identity, version });
    return version;
  };
  const check = async () => {
    const [containerd, runc] = await Promise.all(RUNTIMES.map(versionOf));
    return { ...(containerd ? { containerd } : {}), ...(runc ? { runc } : {}) };
  };
  // One check at a time: two collections at once would otherwise both find nothing known and both ask.
  let last: Promise<unknown> = Promise.resolve();
  return () => {
    const next = last.then(check, check);
    last = next;
    return next;
  };
}

/** The collector. The runtimes' versions are asked as it is made (when the agent starts), so no Abnormal waits for them. */
export function nodeFacts(): Processor {
  const versions = runtimeVersions();
  void versions().catch(() => {}); // asked now, so the first Abnormal need not wait; run() asks again
  return {
    kind: 'InformationCollector',
    ref: { namespace: BUILTIN_NAMESPACE, name: 'node-facts' },
    async run() {
      const [load1, load5, load15] = os.loadavg();
      const [runtime, root] = await Promise.all([versions(), statfs('/').catch(() => undefined)]);
      return {
        ok: true,
        context: evidence({
          nodeFacts: {
            hostname: os.hostname(),
            kernel: `${os.type()} ${os.release()}`,
            runtime,
            uptimeSeconds: Math.round(os.uptime()),
            load: { load1, load5, load15 },
            cpus: os.cpus().length,
            memory: { totalBytes: os.totalmem(), freeBytes: os.freemem() },
            ...(root ? { rootDisk: { totalBytes: root.blocks * root.bsize, availableBytes: root.bavail * root.bsize } } : {}),
            collectedAt: new Date().toISOString(),
          },
        }),
      };
    },
  };
}
