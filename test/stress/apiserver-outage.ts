// Stress: the apiserver is down for a minute while 50 distinct faults are logged, and the agent is
// SIGKILLed and started again in the middle of it. Demanded: all 50 Abnormals exist afterwards, each
// processed once (its diagnoser called once, its occurrence counted once). The first agent journals
// what it reads while it cannot write; the second replays that journal, and reads the rest of the log
// from the position the first saved.
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isTerminal } from '../../agent/api/phase.js';
import { AGENT_NAMESPACE } from '../cluster/cluster.js';
import { registerProcessor } from '../helpers/agent.js';
import { answer } from '../helpers/processor-server.js';
import { waitFor } from '../helpers/wait.js';
import { WatchedAgent, abnormalsOf, faultLine, kubeAgentConfig, onStressCluster, writeFaultRules, type ScenarioResult } from './scenario.js';

export function apiserverOutage(outageSeconds = 60, faults = 50): Promise<ScenarioResult> {
  const node = 'stress-outage';
  return onStressCluster('outage', async ({ base, cluster, server, start, worstDelayMs }) => {
    const diagnosed = new Map<string, number>();
    await registerProcessor('diagnosers', AGENT_NAMESPACE, 'count', {
      url: server.route('/count', (a) => (diagnosed.set(a.metadata!.name!, (diagnosed.get(a.metadata!.name!) ?? 0) + 1), answer(a, { identifiable: true }))),
    });
    const logFile = path.join(base, 'app.log');
    await writeFile(logFile, '');
    await writeFaultRules(path.join(base, 'rules.yaml'), logFile, faults, { assignedDiagnosers: [{ namespace: AGENT_NAMESPACE, name: 'count' }], skipRecovery: true });
    await writeFile(path.join(base, 'config.yaml'), kubeAgentConfig(node, path.join(base, 'state'), cluster.kubeconfigs.agent,
      `sources: {defaultRules: false, ruleFiles: [${path.join(base, 'rules.yaml')}], kernelLogFallback: ''}\n`));
    const first = await start().started();
    const half = Math.floor(faults / 2);
    const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${faultLine(from + i + 1)}\n`).join('');
    let second!: WatchedAgent;
    let downFor = 0;
    await cluster.restartApiserver(async () => {
      const downAt = Date.now();
      await appendFile(logFile, lines(0, half));
      await waitFor('the first agent to read the first half', async () => (await first.metric('nodemedic_symptoms_total')) >= half || undefined, 60_000);
      await first.kill('SIGKILL');
      second = start(); // it waits for the apiserver before it reads on
      await appendFile(logFile, lines(half, faults));
      // The rest of the minute: the outage is the scenario, not a wait for something to happen.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, outageSeconds * 1000 - (Date.now() - downAt))));
      downFor = (Date.now() - downAt) / 1000;
    });
    await second.started(120_000);
    const back = Date.now();
    const abnormals = await waitFor(`${faults} finished Abnormals`, async () => {
      const all = await abnormalsOf(node);
      return all.length >= faults && all.every((a) => isTerminal(a.status?.phase)) ? all : undefined;
    }, 180_000).catch(() => abnormalsOf(node));
    const seconds = ((Date.now() - back) / 1000).toFixed(1);
    const reasons = new Set(abnormals.map((a) => (a.spec.context?.rule as { reason?: string } | undefined)?.reason));
    const once = abnormals.filter((a) => diagnosed.get(a.metadata!.name!) === 1 && a.spec.occurrences?.count === 1).length;
    const succeeded = abnormals.filter((a) => a.status?.phase === 'Succeeded').length;
    return {
      scenario: `apiserver down for ${outageSeconds} s while ${faults} distinct faults are logged, the agent SIGKILLed and restarted in the middle`,
      figure: `down ${downFor.toFixed(0)} s; ${abnormals.length} Abnormals (${reasons.size} distinct faults), ${succeeded} Succeeded ${seconds} s after the apiserver was back ` +
        `(creations held to the node's rate, symptoms.createBurst 10 then createPerMinute 30), ${once} processed exactly once (diagnoser called once, occurrence counted once); ` +
        `worst event-loop delay ${worstDelayMs().toFixed(1)} ms`,
      ok: abnormals.length === faults && reasons.size === faults && once === faults && succeeded === faults,
    };
  });
}
