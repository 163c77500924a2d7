// Stress: the file store's state directory fills up mid-pipeline, then is freed. Abnormals made by
// hand and by log symptoms are held in diagnosis (a real HTTP diagnoser that waits for the word) while
// a filler takes the last byte of a small tmpfs; then they are let go, and more symptoms are logged,
// while nothing can be written. Demanded: a clear error while full, no file corrupt, and every
// Abnormal finished once there is room again. Needs root (mount).
import { execFile } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { isTerminal } from '../../agent/api/phase.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { validateAbnormal } from '../../agent/api/validate.js';
import { ProcessorServer, answer } from '../helpers/processor-server.js';
import { waitFor } from '../helpers/wait.js';
import { WatchedAgent, faultLine, withTeardown, writeFaultRules, type ScenarioResult } from './scenario.js';

const run = promisify(execFile);
const HAND_MADE = 10;
const LOGGED_BEFORE = 10;
const LOGGED_WHILE_FULL = 10;

export async function fullStateDirectory(): Promise<ScenarioResult> {
  const base = await mkdtemp(path.join(tmpdir(), 'nodemedic-stress-full-'));
  const dir = path.join(base, 'state');
  await mkdir(dir);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'nodemedic-stress', dir]);
  const server = await new ProcessorServer().start();
  let agent: WatchedAgent | undefined;
  return withTeardown(async () => {
    await agent?.kill('SIGTERM');
    await server.stop();
    await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
    await rm(base, { recursive: true, force: true });
  }, async () => {
    await mkdir(path.join(dir, 'abnormals'));
    await mkdir(path.join(dir, 'processors'));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const diagnose = server.route('/hold', async (a) => (await gate, answer(a, { identifiable: true })));
    await writeFile(path.join(dir, 'processors/hold.yaml'), `apiVersion: nodemedic.io/v1alpha1\nkind: Diagnoser\nmetadata: {name: hold}\nspec: {url: "${diagnose}", timeoutSeconds: 300}\n`);
    const assigned = { assignedDiagnosers: [{ namespace: 'default', name: 'hold' }], skipRecovery: true };
    const logFile = path.join(base, 'app.log');
    await writeFile(logFile, '');
    const rules = path.join(base, 'rules.yaml');
    await writeFaultRules(rules, logFile, LOGGED_BEFORE + LOGGED_WHILE_FULL, assigned);
    await writeFile(path.join(base, 'config.yaml'), `resyncSeconds: 5\nsources: {ruleFiles: [${rules}], kernelLogFallback: ''}\n`);
    // Enough workers for every Abnormal to be held in diagnosis at once.
    agent = new WatchedAgent(['--config', path.join(base, 'config.yaml'), '--store', 'file', '--state-dir', dir, '--node-name', 'stress', '--concurrency', '64'], path.join(base, 'agent.log'));
    await agent.started();

    for (let i = 1; i <= HAND_MADE; i++) {
      await writeFile(path.join(dir, 'abnormals', `by-hand-${i}.yaml`), `apiVersion: nodemedic.io/v1alpha1\nkind: Abnormal\nspec:\n  source: Custom\n  nodeName: stress\n  assignedDiagnosers: [{namespace: default, name: hold}]\n  skipRecovery: true\n`);
    }
    await appendFile(logFile, Array.from({ length: LOGGED_BEFORE }, (_, i) => `${faultLine(i + 1)}\n`).join(''));
    await waitFor('every Abnormal to be held in diagnosis', async () => server.count('/hold') >= HAND_MADE + LOGGED_BEFORE || undefined, 60_000);

    // Full: the filler takes every block left.
    const filler = path.join(dir, 'filler');
    const fd = openSync(filler, 'w');
    try {
      for (const size of [1 << 20, 1 << 12, 1]) {
        const chunk = Buffer.alloc(size);
        for (;;) writeSync(fd, chunk);
      }
    } catch {
      // ENOSPC at each size, down to the last byte
    } finally {
      closeSync(fd);
    }
    const failuresBefore = await agent.metric('nodemedic_reconcile_errors_total');
    release();
    await appendFile(logFile, Array.from({ length: LOGGED_WHILE_FULL }, (_, i) => `${faultLine(LOGGED_BEFORE + i + 1)}\n`).join(''));
    await waitFor('the agent to fail writing', async () => (await agent!.metric('nodemedic_reconcile_errors_total')) > failuresBefore || undefined, 60_000);
    await waitFor('the symptoms logged while full to be read', async () => (await agent!.metric('nodemedic_symptoms_total')) >= LOGGED_BEFORE + LOGGED_WHILE_FULL || undefined, 60_000);
    const errorLine = (await readFile(agent.logFile, 'utf8')).split('\n').find((l) => /ENOSPC|no space left/i.test(l)) ?? '';
    const whileFull = await readAll(dir);

    const freedAt = Date.now();
    await unlink(filler);
    const total = HAND_MADE + LOGGED_BEFORE + LOGGED_WHILE_FULL;
    const done = await waitFor(`all ${total} Abnormals to finish`, async () => {
      const all = await readAll(dir);
      return all.parsed.length >= total && all.parsed.every((a) => isTerminal(a.status?.phase)) ? all : undefined;
    }, 120_000).catch(async () => readAll(dir));
    const seconds = ((Date.now() - freedAt) / 1000).toFixed(1);
    const finished = done.parsed.filter((a) => isTerminal(a.status?.phase)).length;
    const leftovers = (await readdir(path.join(dir, 'abnormals'))).filter((f) => f.startsWith('.'));
    const corrupt = whileFull.corrupt + done.corrupt;
    const logged = JSON.parse(errorLine || '{}') as { msg?: string; err?: string | { message?: string } };
    const message = { msg: logged.msg, err: typeof logged.err === 'object' ? logged.err.message : logged.err };
    return {
      scenario: `file store's state directory full mid-pipeline (${HAND_MADE} Abnormals by hand and ${LOGGED_BEFORE} from symptoms in diagnosis, ${LOGGED_WHILE_FULL} symptoms logged while full), then freed`,
      figure: `error while full: "${message.msg ?? '(none logged)'}${message.err ? `: ${message.err}` : ''}"; corrupt files ${corrupt}, temporary files left ${leftovers.length}; ` +
        `${finished} of ${total} finished ${seconds} s after freeing; worst event-loop delay ${agent.worstDelayMs.toFixed(1)} ms`,
      ok: Boolean(errorLine) && corrupt === 0 && leftovers.length === 0 && finished === total,
    };
  });
}

/** Every Abnormal file: those that parse and validate, and how many do not. */
async function readAll(dir: string): Promise<{ parsed: Abnormal[]; corrupt: number }> {
  const parsed: Abnormal[] = [];
  let corrupt = 0;
  for (const file of (await readdir(path.join(dir, 'abnormals'))).filter((f) => !f.startsWith('.'))) {
    try {
      const abnormal = parse(await readFile(path.join(dir, 'abnormals', file), 'utf8')) as Abnormal;
      validateAbnormal({ ...abnormal, metadata: { ...abnormal.metadata, name: file.replace(/\.\w+$/, '') } });
      parsed.push(abnormal);
    } catch {
      corrupt++;
    }
  }
  return { parsed, corrupt };
}
