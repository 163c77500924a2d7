// The built-in collectors that read the node itself, on this machine's real kernel log and binaries:
// kernel-log hands on the lines from shortly before the symptom (and not older ones); node-facts
// reports the container runtime's version as the installed binary gives it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { test } from 'node:test';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { kernelLog } from '../../collectors/kernel-log.js';
import { nodeFacts } from '../../collectors/node-facts.js';
import { needsRoot } from '../helpers/needs.js';

const abnormalSeenAt = (firstSeen: Date): Abnormal => ({
  apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { namespace: 'default', name: 'collect' },
  spec: { nodeName: 'here', source: 'Custom', occurrences: { count: 1, firstSeen: firstSeen.toISOString(), lastSeen: firstSeen.toISOString() } },
} as Abnormal);

const linesOf = async (abnormal: Abnormal, beforeSeconds: number) => {
  const outcome = await kernelLog({ beforeSeconds }).run(abnormal, new AbortController().signal);
  assert.ok(outcome.ok, JSON.stringify(outcome));
  return (outcome.context?.kernelLog as { lines: string[] }).lines;
};

test('kernel-log hands on the kernel lines logged from beforeSeconds before the symptom, not older ones', { skip: needsRoot('writes a kernel log record into /dev/kmsg') }, async () => {
  const marker = `nodemedic-collector-${Date.now()}`;
  const fd = openSync('/dev/kmsg', 'w');
  try {
    writeSync(fd, `<6>${marker}\n`);
  } finally {
    closeSync(fd);
  }
  const now = Date.now();
  const around = await linesOf(abnormalSeenAt(new Date(now)), 60);
  assert.ok(around.some((line) => line.endsWith(`] ${marker}`)), 'the line logged just before the symptom');
  // A symptom an hour from now, with a minute before it: the line is older than that window.
  const later = await linesOf(abnormalSeenAt(new Date(now + 3600_000)), 60);
  assert.ok(!later.some((line) => line.includes(marker)), 'a line older than the window is left out');
});

const containerd = '/usr/bin/containerd';
test('node-facts reports the container runtime version the installed binary gives', { skip: existsSync(containerd) ? false : `${containerd} is not installed here` }, async () => {
  const expected = execFileSync(containerd, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  const outcome = await nodeFacts.run(abnormalSeenAt(new Date()), new AbortController().signal);
  assert.ok(outcome.ok);
  const facts = outcome.context?.nodeFacts as { runtime: { containerd?: string }; kernel: string };
  assert.equal(facts.runtime.containerd, expected);
  assert.match(facts.kernel, /^Linux /);
});
