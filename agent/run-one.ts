// `nodemedic run ABNORMAL.yaml [--scripts DIR]`: one Abnormal through the built-ins and the local scripts
// (DIR/collectors, DIR/diagnosers, DIR/recoverers), with no cluster — the tool for writing and testing
// a script. It prints what each processor returned and the Abnormal's final status. The pipeline is the
// agent's own, on a file store in a temporary directory.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { parse, stringify } from 'yaml';
import { DEFAULTS } from './config.js';
import type { Abnormal } from './api/types.generated.js';
import { ValidationError, validateAbnormal } from './api/validate.js';
import { builtinProcessors } from './builtins.js';
import { Pipeline } from './pipeline/pipeline.js';
import { refName } from './processors/contract.js';
import { ProcessorRegistry } from './processors/registry.js';
import { FileCatalog } from './store/file-catalog.js';
import { FileEventLog } from './store/file-events.js';
import { FileStore } from './store/file.js';

export async function runOne(args: string[]): Promise<number> {
  const scriptsAt = args.indexOf('--scripts');
  const scriptsDir = scriptsAt >= 0 ? args[scriptsAt + 1] : undefined;
  const file = args.filter((_, i) => scriptsAt < 0 || (i !== scriptsAt && i !== scriptsAt + 1))[0];
  if (!file || (scriptsAt >= 0 && !scriptsDir)) {
    console.error('usage: nodemedic run ABNORMAL.yaml [--scripts DIR]');
    return 2;
  }
  let abnormal: Abnormal;
  try {
    const object = parse(await readFile(file, 'utf8')) as Abnormal;
    abnormal = validateAbnormal({ ...object, metadata: { name: 'run', namespace: 'default', ...object?.metadata }, status: undefined });
  } catch (err) {
    console.error(`${file}: ${err instanceof ValidationError ? err.problems.join('\n  ') : (err as Error).message}`);
    return 2;
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-run-'));
  try {
    await mkdir(path.join(dir, 'abnormals'));
    const { name, namespace } = abnormal.metadata as { name: string; namespace: string };
    await writeFile(path.join(dir, 'abnormals', `${name}.yaml`), stringify({ ...abnormal, metadata: { name, namespace } }));
    const log = pino({ level: 'silent' });
    const store = new FileStore({ dir, log, rescanMs: 3_600_000, settleMs: 0 });
    await store.start(() => {});
    const catalog = new FileCatalog({ dir, log });
    const registry = new ProcessorRegistry(builtinProcessors({ probes: { allowExec: false }, recovery: { dryRun: true } }), { catalog, secrets: catalog }, { maxReplyBytes: DEFAULTS.maxReplyBytes, defaultTimeoutSeconds: 30 }, {
      dirs: scriptsDir
        ? { InformationCollector: path.join(scriptsDir, 'collectors'), Diagnoser: path.join(scriptsDir, 'diagnosers'), Recoverer: path.join(scriptsDir, 'recoverers') }
        : {},
      defaultTimeoutSeconds: DEFAULTS.scripts.defaultTimeoutSeconds,
      maxOutputBytes: DEFAULTS.scripts.maxOutputBytes,
    });
    const pipeline = new Pipeline({
      store, events: new FileEventLog({ dir, log }), registry, nodeName: abnormal.spec.nodeName, concurrency: 1, log,
      onStep: (processor, outcome, ms) => {
        const what = outcome.ok
          ? [outcome.identified && 'identified', outcome.recovered && 'recovered', outcome.message].filter(Boolean).join(': ') || 'ok'
          : `failed: ${outcome.reason}: ${outcome.message}`;
        console.log(`${processor.kind} ${refName(processor.ref)} (${ms} ms): ${what}`);
        if (outcome.ok && outcome.context) console.log(`  context: ${JSON.stringify(outcome.context)}`);
        if (outcome.ok && outcome.output) console.log(`  output: ${outcome.output.split('\n').join('\n          ')}`);
      },
    });
    await pipeline.reconcile(`${namespace}/${name}`);
    const done = await store.get(`${namespace}/${name}`);
    console.log(`\n${stringify({ status: done?.status }, { lineWidth: 0 })}`);
    await store.stop();
    await registry.close();
    return done?.status?.phase === 'Succeeded' ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
