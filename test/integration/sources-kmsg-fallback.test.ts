// Where the kernel log device cannot be opened, the kernel rules read the kernel log file instead
// (sources.kernelLogFallback), as documented. The case from the field: kernel.dmesg_restrict=1 and an
// agent without CAP_SYSLOG. /dev/kmsg's mode still says "readable", so only opening it tells.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { parse } from 'yaml';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { BIN, waitFor } from '../helpers/agent.js';
import { holdMachineLock } from '../helpers/machine-lock.js';
import { needsRoot } from '../helpers/needs.js';

const skip = needsRoot('sets kernel.dmesg_restrict and runs the agent as nobody');
const NOBODY = 65534;

test('with kernel.dmesg_restrict=1 and no CAP_SYSLOG, the kernel rules read the kernel log file', { skip }, async () => {
  // On ec2de65 the kmsg source failed to start ("EPERM") and nothing read the kernel log at all.
  // (Debian's kernels set dmesg_restrict=1 already; it is set here for any kernel, and put back.)
  await holdMachineLock('kmsg'); // the setting is the whole machine's
  const restrict = '/proc/sys/kernel/dmesg_restrict';
  const before = (await readFile(restrict, 'utf8')).trim();
  await writeFile(restrict, '1');
  after(() => writeFile(restrict, before));

  // Not under the run's own TMPDIR, which only root may enter: nobody must reach these files.
  const dir = await mkdtemp('/tmp/nodemedic-kmsg-fallback-');
  after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755);
  const state = path.join(dir, 'state');
  await mkdir(state);
  await chown(state, NOBODY, NOBODY);
  const kernLog = path.join(dir, 'kern.log');
  await writeFile(kernLog, 'Nov 30 20:00:00 node kernel: [    0.000000] Linux version 6.1.0\n', { mode: 0o644 });
  await writeFile(path.join(dir, 'config.yaml'), `sources: {kernelLogFallback: ${kernLog}}\n`);
  const agent = spawn('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, BIN, 'agent',
    '--config', path.join(dir, 'config.yaml'), '--listen', '127.0.0.1:0', '--store', 'file', '--state-dir', state, '--node-name', 'fallback'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  agent.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  agent.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise((resolve) => agent.once('exit', resolve));
  try {
    await waitFor('the agent to start', async () => output.includes('"msg":"agent started"') || undefined).catch((err: Error) => {
      throw new Error(`${err.message}; it said:\n${output}`);
    });
    const fellBack = output.split('\n').find((l) => l.includes('reading the kernel log file instead'));
    assert.ok(fellBack, output);
    assert.match(fellBack, /Operation not permitted|EPERM/, 'it says why');
    await appendFile(kernLog, 'Nov 30 20:00:01 node kernel: [  120.000000] INFO: task kworker/u16:3:2811 blocked for more than 122 seconds.\n');
    const abnormal = await waitFor('the hung task\'s Abnormal', async () => {
      for (const file of (await readdir(path.join(state, 'abnormals')).catch(() => [] as string[])).filter((f) => !f.startsWith('.'))) {
        const a = parse(await readFile(path.join(state, 'abnormals', file), 'utf8')) as Abnormal;
        if ((a.spec.context?.rule as { reason?: string } | undefined)?.reason === 'TaskHung') return a;
      }
      return undefined;
    });
    assert.equal(abnormal.spec.log?.filePath, kernLog);
  } finally {
    agent.kill('SIGTERM');
    await exited;
  }
});
