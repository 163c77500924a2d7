// Stress: the agent on the kube store SIGKILLed 20 times while Abnormals flow through a collector, a
// diagnoser and a recoverer (real HTTP processors that take their time): each kill lands while a call
// to a processor is in flight, the 1st to 5th call of that life, so kills fall in every step. Demanded: every Abnormal ends in a terminal phase, and no recoverer is ever called twice
// for one Abnormal (the write-ahead record of a recovery makes an interrupted one Unknown, for a person).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { NODE_LABEL } from '../../agent/api/crds.js';
import { isTerminal } from '../../agent/api/phase.js';
import { AGENT_NAMESPACE } from '../cluster/cluster.js';
import { registerProcessor } from '../helpers/agent.js';
import { abnormal, createAbnormal } from '../helpers/kube.js';
import { answer } from '../helpers/processor-server.js';
import { waitFor } from '../helpers/wait.js';
import { abnormalsOf, kubeAgentConfig, onStressCluster, type ScenarioResult } from './scenario.js';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const between = (min: number, max: number) => min + Math.random() * (max - min);

export function sigkills(kills = 20): Promise<ScenarioResult> {
  const node = 'stress-kills';
  return onStressCluster('kills', async ({ base, cluster, server, start, worstDelayMs }) => {
    const recovered = new Map<string, number>();
    // Each processor call is counted as it arrives, and answered 100–1000 ms later.
    let callsArrived = 0;
    let waiting: { until: number; resolve: () => void } | undefined;
    const slow = async <T>(value: T) => {
      if (++callsArrived >= (waiting?.until ?? Infinity)) waiting!.resolve();
      await pause(between(100, 1000));
      return value;
    };
    /** Resolves as the `count`-th call from now arrives. */
    const moreCalls = (count: number) => new Promise<void>((resolve) => (waiting = { until: callsArrived + count, resolve }));
    const ref = (name: string) => [{ namespace: AGENT_NAMESPACE, name }];
    await registerProcessor('informationcollectors', AGENT_NAMESPACE, 'slow-collect', { url: server.route('/collect', (a) => slow(answer(a, { context: { ...a.status?.context, collected: true } }))) });
    await registerProcessor('diagnosers', AGENT_NAMESPACE, 'slow-diagnose', { url: server.route('/diagnose', (a) => slow(answer(a, { identifiable: true }))) });
    await registerProcessor('recoverers', AGENT_NAMESPACE, 'slow-recover', {
      url: server.route('/recover', (a) => (recovered.set(a.metadata!.name!, (recovered.get(a.metadata!.name!) ?? 0) + 1), slow(answer(a, { recoverable: true })))),
    });
    await writeFile(path.join(base, 'config.yaml'), kubeAgentConfig(node, path.join(base, 'state'), cluster.kubeconfigs.agent,
      'sources: {defaultRules: false, kernelLogFallback: ""}\nconcurrency: 8\n' +
      'recovery: {maxPerHour: 1000, cooldownSeconds: 0, maxNodesAtOnce: 1000}\n'));
    let created = 0;
    const createSome = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const name = `kill-${String(++created).padStart(3, '0')}`;
        await createAbnormal(abnormal(name, AGENT_NAMESPACE, {
          nodeName: node, assignedInformationCollectors: ref('slow-collect'), assignedDiagnosers: ref('slow-diagnose'), assignedRecoverers: ref('slow-recover'),
        }, { [NODE_LABEL]: node }));
      }
    };
    // Abnormals keep coming, five a second, through every life of the agent.
    let killing = true;
    const creating = (async () => {
      while (killing) await Promise.all([createSome(1), pause(200)]);
    })();
    for (let life = 0; life < kills; life++) {
      const agent = await start().started();
      await moreCalls(1 + Math.floor(Math.random() * 5)); // mid-call: the processor has not answered yet
      await agent.kill('SIGKILL');
    }
    killing = false;
    await creating;
    await start().started();
    const total = created;
    const all = await waitFor(`all ${total} Abnormals to finish`, async () => {
      const list = await abnormalsOf(node);
      return list.length >= total && list.every((a) => isTerminal(a.status?.phase)) ? list : undefined;
    }, 300_000).catch(() => abnormalsOf(node));
    const phases = new Map<string, number>();
    for (const a of all) {
      const key = `${a.status?.phase ?? 'none'}${a.status?.phase === 'Succeeded' ? '' : ` (${a.status?.reason ?? '?'})`}`;
      phases.set(key, (phases.get(key) ?? 0) + 1);
    }
    const terminal = all.filter((a) => isTerminal(a.status?.phase)).length;
    const twice = [...recovered.values()].filter((n) => n > 1).length;
    const calls = [...recovered.values()].reduce((a, b) => a + b, 0);
    return {
      scenario: `${kills} SIGKILLs, each during a call to a processor (kube store), while ${total} Abnormals go through a collector, a diagnoser and a recoverer`,
      figure: `${terminal} of ${total} terminal: ${[...phases].map(([k, n]) => `${n} ${k}`).join(', ')}; recoverer called ${calls} times, twice for one Abnormal: ${twice}; worst event-loop delay ${worstDelayMs().toFixed(1)} ms`,
      ok: terminal === total && twice === 0,
    };
  });
}
