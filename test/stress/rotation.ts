// Stress: a log file rotated every second while it is written at 5,000 lines/s, alternately by
// rename (the writer opens a new file) and by copy-truncate (logrotate's copytruncate: the file is
// copied to FILE.1 and cut to zero). Every line carries its number; the agent's file follower
// (agent/node/file-reader.ts, as the file source runs it) must hand on each exactly once.
// The writer and the rotation take turns in this process, as a program and logrotate would not: a
// line written between logrotate's copy and its truncate is in neither file, and no follower can
// read it. That window belongs to copytruncate itself, so the test leaves it out.
import { closeSync, copyFileSync, ftruncateSync, openSync, renameSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { FileReader } from '../../agent/node/file-reader.js';
import { waitFor } from '../helpers/wait.js';
import type { ScenarioResult } from './scenario.js';

export async function rotation(seconds: number, linesPerSecond = 5000): Promise<ScenarioResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-stress-rotation-'));
  const file = path.join(dir, 'app.log');
  let fd = openSync(file, 'a');
  const total = seconds * linesPerSecond;
  const seen = new Uint8Array(total);
  let received = 0;
  const reader = new FileReader({ file, stateDir: path.join(dir, 'state'), log: pino({ level: 'silent' }) });
  await reader.start((line) => {
    const n = Number(/^line (\d+) /.exec(line)?.[1] ?? -1);
    if (n >= 0 && n < total) seen[n]! += 1;
    received++;
  });
  const SAMPLE_MS = 10;
  const delay = monitorEventLoopDelay({ resolution: SAMPLE_MS });
  delay.enable();

  let written = 0;
  let rotations = 0;
  const started = Date.now();
  const padding = 'x'.repeat(60);
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      // As many lines as are due by now: 5,000 a second however late the timer fires.
      const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * linesPerSecond));
      let batch = '';
      for (; written < due; written++) batch += `line ${written} ${padding}\n`;
      if (batch) writeSync(fd, batch);
      if (Date.now() - started >= (rotations + 1) * 1000 && written < total) {
        rotations++;
        if (rotations % 2 === 1) {
          renameSync(file, `${file}.1`); // the old file keeps being the writer's until it reopens
          closeSync(fd);
          fd = openSync(file, 'a');
        } else {
          copyFileSync(file, `${file}.1`);
          ftruncateSync(fd, 0);
        }
      }
      if (written >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 10);
  });
  closeSync(fd);
  // Caught up: as many lines as were written (lost lines never come: then the deadline ends the wait).
  await waitFor('the follower to read every line', async () => received >= total || undefined, 30_000).catch(() => {});
  delay.disable();
  await reader.stop();
  await rm(dir, { recursive: true, force: true });
  let lost = 0;
  let repeated = 0;
  for (const count of seen) {
    if (count === 0) lost++;
    else repeated += count - 1;
  }
  return {
    scenario: `log file rotated every second (rename, then copy-truncate, in turn) at ${linesPerSecond.toLocaleString('en')} lines/s for ${seconds} s`,
    figure: `${total.toLocaleString('en')} lines, ${rotations} rotations: lost ${lost}, repeated ${repeated}; worst event-loop delay ${(delay.max / 1e6 - SAMPLE_MS).toFixed(1)} ms`,
    ok: lost === 0 && repeated === 0,
  };
}
