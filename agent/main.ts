#!/usr/bin/env node
// The `nodemedic` command. Each subcommand is one entry in COMMANDS; the daemon (`agent`) and the
// tools for writing scripts and rules (`run`, `rules`) join this table as they are built.
import './lib/linear-regexp.js'; // first: V8's regexp flags must be set before any rule is compiled
import './lib/utc-dates.js'; // first too: a date written before it would set up ICU's time zones (1 MiB)
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pino } from 'pino';
import { parseAllDocuments } from 'yaml';
import { startAgent } from './agent.js';
import { runOne } from './run-one.js';
import { isProcessorKind } from './api/kinds.js';
import { ValidationError, validateAbnormal, validateProcessor } from './api/validate.js';
import { CONFIG_FLAGS_HELP, ConfigError, loadConfig } from './config.js';
import { StartupError } from './startup.js';
import { DEFAULT_RULE_SETS } from './sources/default-rules.js';
import { parseMonitorFile } from './sources/monitor-files.js';
import { LogMatcher, RuleError, compileRuleSet, type RuleSet } from './sources/rules.js';
import type { LineTranslator } from './sources/translate.js';

type Command = { usage: string; summary: string; run(args: string[]): Promise<number> };

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Checks Abnormal and processor manifests offline, with the schema the apiserver enforces. */
async function validateFiles(files: string[]): Promise<number> {
  if (files.length === 0) {
    console.error('nodemedic validate: name at least one file (YAML or JSON, "-" for stdin)');
    return 2;
  }
  let invalid = 0;
  for (const file of files) {
    let text: string;
    try {
      text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
    } catch (err) {
      console.error(`${file}: cannot read: ${(err as Error).message}`);
      invalid++;
      continue;
    }
    for (const [index, doc] of parseAllDocuments(text).entries()) {
      const where = `${file}#${index + 1}`;
      if (doc.errors.length > 0) {
        console.error(`${where}: not YAML: ${doc.errors[0]!.message}`);
        invalid++;
        continue;
      }
      const object = doc.toJS() as { kind?: unknown; metadata?: { name?: unknown } } | null;
      if (object === null) continue; // an empty document, e.g. after a trailing ---
      const kind = object.kind;
      const validate = kind === 'Abnormal' ? validateAbnormal : isProcessorKind(kind) ? validateProcessor : undefined;
      if (!validate) {
        console.error(`${where}: kind must be Abnormal, InformationCollector, Diagnoser or Recoverer (got ${JSON.stringify(kind)})`);
        invalid++;
        continue;
      }
      try {
        validate(object);
        console.log(`${where}: ${String(kind)} ${String(object.metadata?.name ?? '(unnamed)')} is valid`);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        console.error(`${where}: ${String(kind)} ${String(object.metadata?.name ?? '(unnamed)')} is invalid:`);
        for (const problem of err.problems) console.error(`  ${problem}`);
        invalid++;
      }
    }
  }
  return invalid > 0 ? 1 : 0;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The daemon: runs until SIGTERM / SIGINT; a second signal cancels the steps in flight. */
async function runAgent(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(`Usage: nodemedic agent [FLAGS]\n\nFlags (each overrides the file; the environment variable overrides the file too):\n${CONFIG_FLAGS_HELP}`);
    return 0;
  }
  let config;
  try {
    config = await loadConfig(args);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`nodemedic agent: ${err.message}`);
    return 2;
  }
  const log = pino({ level: config.logLevel, base: { node: config.nodeName } });
  let agent;
  try {
    agent = await startAgent(config, log);
  } catch (err) {
    if (!(err instanceof StartupError)) throw err;
    console.error(`nodemedic agent: ${err.message}`);
    return 1;
  }
  await new Promise<void>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      log.info({ signal }, signals === 1 ? 'stopping: finishing the steps in flight' : 'stopping now: cancelling the steps in flight');
      void agent.stop(signals > 1).then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return 0;
}

/**
 * `rules test [FILE] [--rules RULES_FILE]...`: lines from FILE (or stdin) through the rules — the given
 * rule files (NPD JSON or nodemedic YAML), else the default ones — printing what matched which rule.
 */
async function testRules(args: string[]): Promise<number> {
  const ruleFiles: string[] = [];
  const inputs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--rules') ruleFiles.push(args[++i] ?? '');
    else inputs.push(args[i]!);
  }
  if (inputs.length > 1) {
    console.error('nodemedic rules test: give at most one file of log lines (or none, for stdin)');
    return 2;
  }
  let feeds: Array<{ set: RuleSet; translator?: LineTranslator }>;
  try {
    feeds = ruleFiles.length > 0
      ? await Promise.all(ruleFiles.map(async (f) => {
        const loaded = parseMonitorFile(await readFile(f, 'utf8'), f);
        if (loaded.kind !== 'log') throw new RuleError(f, 'a custom-plugin monitor: it runs plugins, and has no log rules to test');
        for (const warning of loaded.warnings) console.error(`${f}: ${warning}`);
        return { set: loaded.ruleSet, ...(loaded.translator ? { translator: loaded.translator } : {}) };
      }))
      : DEFAULT_RULE_SETS.map((spec) => ({ set: compileRuleSet(spec, `default ${spec.source} rules`) }));
  } catch (err) {
    if (!(err instanceof RuleError) && (err as NodeJS.ErrnoException).code === undefined) throw err;
    console.error(`nodemedic rules test: ${(err as Error).message}`);
    return 2;
  }
  const sets = feeds.map((f) => f.set);
  const matchers = feeds.map((f) => ({ ...f, matcher: new LogMatcher(f.set) }));
  const text = inputs[0] ? await readFile(inputs[0], 'utf8') : await readStdin();
  let lineNumber = 0;
  let matched = 0;
  for (const line of text.replace(/\n$/, '').split('\n')) {
    lineNumber++;
    for (const { matcher, translator } of matchers) {
      // As the agent reads it (log-source.ts): trimmed; a filelog line cut down to its message.
      const message = translator ? translator.translate(line)?.message.trim() : line.trim();
      if (message === undefined) continue;
      for (const match of matcher.push(message, translator ? line.trim() : undefined)) {
        matched++;
        const { rule } = match;
        const kind = [rule.type ?? 'temporary', rule.condition].filter(Boolean).join(', ');
        console.log(`line ${lineNumber}: ${matcher.ruleSet.source}/${rule.reason} (${kind})\n  ${match.text.replace(/\n/g, '\n  ')}`);
      }
    }
  }
  console.log(`${lineNumber} line(s), ${matched} match(es) against ${sets.map((s) => `${s.source} (${s.rules.length} rules)`).join(', ')}`);
  return 0;
}

const COMMANDS: Record<string, Command> = {
  rules: {
    usage: 'rules test [FILE] [--rules RULES]',
    summary: 'run log lines (FILE or stdin) through the rules (RULES files, NPD or nodemedic format; default: built-in)',
    run: async ([sub, ...rest]) => {
      if (sub === 'test') return testRules(rest);
      console.error('nodemedic rules: the subcommand is `test`');
      return 2;
    },
  },
  run: {
    usage: 'run ABNORMAL.yaml [--scripts DIR]',
    summary: 'run one Abnormal through the built-ins and DIR/{collectors,diagnosers,recoverers}, no cluster; exit 0 if it succeeds',
    run: runOne,
  },
  agent: {
    usage: 'agent [FLAGS]',
    summary: 'run the daemon (`nodemedic agent --help` for its flags)',
    run: runAgent,
  },
  validate: {
    usage: 'validate FILE...',
    summary: 'check Abnormal / InformationCollector / Diagnoser / Recoverer manifests against the API schema',
    run: validateFiles,
  },
  version: {
    usage: 'version',
    summary: 'print the version',
    run: async () => {
      console.log(pkg.version);
      return 0;
    },
  },
  help: { usage: 'help', summary: 'print this help', run: async () => (console.log(help()), 0) },
};

function help(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`);
  return `nodemedic ${pkg.version}: a node-level diagnosis and self-healing agent for Kubernetes

Usage: nodemedic COMMAND [ARGS]

Commands:
${lines.join('\n')}`;
}

async function main(argv: string[]): Promise<number> {
  const [name = 'help', ...args] = argv;
  if (name === '--help' || name === '-h') return COMMANDS.help!.run([]);
  if (name === '--version') return COMMANDS.version!.run([]);
  const command = COMMANDS[name];
  if (!command) {
    console.error(`nodemedic: unknown command ${JSON.stringify(name)}\n\n${help()}`);
    return 2;
  }
  return command.run(args);
}

process.exitCode = await main(process.argv.slice(2));
