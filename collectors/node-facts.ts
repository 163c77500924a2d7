// Node facts: kernel, container runtime versions, uptime, load, memory, CPUs and the root disk of the
// node the agent runs on — the first thing anyone asks when reading an Abnormal. A fact that cannot be
// read is left out; the collector never fails.
import { execFile } from 'node:child_process';
import { statfs } from 'node:fs/promises';
import os from 'node:os';
import { BUILTIN_NAMESPACE, type Processor } from '../agent/processors/contract.js';
import { evidence } from '../agent/processors/evidence.js';

/** How long a runtime's version is taken as known: an upgrade shows within this time. */
const VERSION_TTL_MS = 10 * 60 * 1000;
const versions = new Map<string, { at: number; version: Promise<string | undefined> }>();

/**
 * `BINARY --version`'s first line, or undefined where it is not installed. Asked once per
 * VERSION_TTL_MS, not for every Abnormal: starting a process holds the event loop for milliseconds.
 */
function versionOf(binary: string): Promise<string | undefined> {
  const known = versions.get(binary);
  if (known && Date.now() - known.at < VERSION_TTL_MS) return known.version;
  // Node's own execFile, not execa: loading execa for two version lines costs more CPU and memory
  // than the calls themselves.
  const version = new Promise<string | undefined>((resolve) => {
    execFile(binary, ['--version'], { timeout: 3000, maxBuffer: 64 * 1024, encoding: 'utf8' }, (err, stdout) => {
      resolve(err ? undefined : stdout.split('\n')[0]?.trim() || undefined);
    });
  });
  versions.set(binary, { at: Date.now(), version });
  return version;
}

export const nodeFacts: Processor = {
  kind: 'InformationCollector',
  ref: { namespace: BUILTIN_NAMESPACE, name: 'node-facts' },
  async run() {
    const [load1, load5, load15] = os.loadavg();
    const [containerd, runc, root] = await Promise.all([versionOf('containerd'), versionOf('runc'), statfs('/').catch(() => undefined)]);
    return {
      ok: true,
      context: evidence({
        nodeFacts: {
          hostname: os.hostname(),
          kernel: `${os.type()} ${os.release()}`,
          runtime: { ...(containerd ? { containerd } : {}), ...(runc ? { runc } : {}) },
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
