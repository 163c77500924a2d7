// Property-based fuzzing (fast-check) of everything that takes input from outside: rule patterns ×
// log lines, Alertmanager payloads, Abnormal files, processor replies (what HTTP and script processors
// send), kernel log records. Each property: no crash (nothing throws but the typed refusal), and for
// rules, how long the worst single evaluation took. Part of `npm run stress`, not `npm test`.
import { mkdtemp, rm, writeFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { pino } from 'pino';
import { PROCESSOR_KINDS } from '../../agent/api/kinds.js';
import type { Abnormal } from '../../agent/api/types.generated.js';
import { parseKmsgRecord } from '../../agent/node/kmsg.js';
import { interpretReply } from '../../agent/processors/contract.js';
import { AlertSource } from '../../agent/sources/alerts.js';
import { DEFAULT_RULE_SETS } from '../../agent/sources/default-rules.js';
import { parseRuleSet } from '../../agent/sources/monitor-files.js';
import { LogMatcher, RuleError, compileRuleSet, type RuleSet } from '../../agent/sources/rules.js';
import { REPO_ROOT } from '../cluster/cluster.js';
import { FileStore } from '../../agent/store/file.js';

export type FuzzResult = { target: string; cases: number; crashes: number; note: string };

const log = pino({ level: 'silent' });

/** Pieces of patterns, chosen to combine into the overlapping and nested repetitions that backtrack. */
const piece = fc.oneof(
  fc.constantFrom('a', 'b', 'x', ' ', '.', '\\s', '\\d', '\\w', '[ab]', '[^a]', 'conn reset: ', 'dropped'),
  fc.constantFrom('(a|a)', '(a|ab)', '(.|\\s)', '(a+)', '(?:a?)', '(\\w+\\s?)'),
);
const quantifier = fc.constantFrom('', '', '*', '+', '?', '{2,5}', '{25}');
const pattern = fc.array(fc.tuple(piece, quantifier).map(([p, q]) => p + q), { minLength: 1, maxLength: 8 }).map((parts) => parts.join(''));
const line = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.tuple(fc.constantFrom('a', 'ab', 'x ', ' '), fc.integer({ min: 1, max: 2000 }), fc.constantFrom('', 'c', '!', 'dropped')).map(([unit, n, end]) => unit.repeat(n) + end),
  // Longer than a rule ever sees (the last 2,048 characters), up to the longest line read (64 KiB).
  fc.tuple(fc.constantFrom('a', 'ab', 'x ', ' '), fc.integer({ min: 2048, max: 32_768 }), fc.constantFrom('', 'c', '!')).map(([unit, n, end]) => unit.repeat(n) + end),
);

/** Lines timed one by one through matchers: the worst, how many over 10 ms, and crashes (a throw). */
class MatchTimes {
  evaluations = 0;
  crashes = 0;
  worstMs = 0;
  over10 = 0;
  /** What the worst was: the rule set's patterns and the line's length. */
  worstCase = '';

  push(matcher: LogMatcher, text: string): void {
    const started = performance.now();
    try {
      matcher.push(text);
    } catch {
      this.crashes++;
    }
    const ms = performance.now() - started;
    this.evaluations++;
    if (ms > this.worstMs) {
      this.worstMs = ms;
      this.worstCase = `${matcher.ruleSet.rules.length === 1 ? JSON.stringify(matcher.ruleSet.rules[0]!.pattern) : matcher.ruleSet.source} on a ${text.length}-character line`;
    }
    if (ms > 10) this.over10++;
  }

  get note(): string {
    return `worst ${this.worstMs.toFixed(2)} ms (${this.worstCase}), ${this.over10} over 10 ms`;
  }
}

export function fuzzRules(runs: number): FuzzResult {
  const times = new MatchTimes();
  let refused = 0;
  fc.assert(fc.property(pattern, fc.array(line, { minLength: 1, maxLength: 5 }), (source, lines) => {
    let matcher: LogMatcher;
    try {
      matcher = new LogMatcher(compileRuleSet({ plugin: 'kmsg', logPath: '/dev/kmsg', source: 'fuzz', bufferSize: 10, rules: [{ reason: 'Fuzz', pattern: source }] }, 'fuzz'));
    } catch (err) {
      if (err instanceof RuleError) refused++;
      else times.crashes++;
      return true;
    }
    for (const text of lines) times.push(matcher, text);
    return true;
  }), { numRuns: runs });
  return { target: 'rule patterns × lines', cases: runs, crashes: times.crashes, note: `${times.evaluations} evaluations, ${refused} patterns refused; ${times.note}` };
}

/**
 * The rule sets the agent ships and node-problem-detector's own (../shared/npd/config, where present),
 * each against hostile lines of up to 64 KiB built from its rules' own literals: a line is timed
 * through every rule of its set, as the agent matches it.
 */
async function fuzzRealRules(runs: number): Promise<FuzzResult> {
  const sets = DEFAULT_RULE_SETS.map((spec, i) => compileRuleSet(spec, `default ${i}`));
  const npd = path.join(REPO_ROOT, '../shared/npd/config');
  for (const file of await readdir(npd).catch(() => [] as string[])) {
    try {
      sets.push(parseRuleSet(await readFile(path.join(npd, file), 'utf8'), file));
    } catch {
      // not a log monitor (custom plugins, system stats): not rules
    }
  }
  const times = new MatchTimes();
  const fragments = (set: RuleSet) => [...set.rules.flatMap((r) => (r.literal ? [r.literal] : [])), ' ', 'a', '1', ':', '(', ')', '[', ']', '\n'];
  fc.assert(fc.property(fc.nat(sets.length - 1), fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 65_536 }), (which, picks, length) => {
    const set = sets[which]!;
    const pieces = fragments(set);
    const unit = picks.map((p) => pieces[p % pieces.length]).join('');
    times.push(new LogMatcher(set), unit.repeat(Math.ceil(length / unit.length)).slice(0, length));
    return true;
  }), { numRuns: runs });
  return { target: `our and NPD's rule sets × hostile lines up to 64 KiB (${sets.length} sets)`, cases: runs, crashes: times.crashes, note: `each line through its whole set: ${times.note}` };
}

function fuzzAlerts(runs: number): FuzzResult {
  let crashes = 0;
  const statuses = new Map<number, number>();
  const receiver = new AlertSource({ nodeLabels: ['node', 'instance'] });
  void receiver.start(() => {});
  const alert = fc.record({
    status: fc.oneof(fc.constantFrom('firing', 'resolved'), fc.string()),
    labels: fc.dictionary(fc.constantFrom('alertname', 'node', 'instance', 'x'), fc.oneof(fc.string(), fc.constant('node-a'), fc.string({ minLength: 33 * 1024, maxLength: 33 * 1024 }))),
    startsAt: fc.oneof(fc.constant('yesterday'), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string()),
  }, { requiredKeys: [] });
  const payload = fc.oneof(fc.record({ version: fc.constantFrom('4', '3'), alerts: fc.array(alert, { maxLength: 5 }) }), fc.anything());
  fc.assert(fc.property(payload, (body) => {
    try {
      const reply = receiver.receive(JSON.stringify(body) ?? 'null');
      statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
    } catch {
      crashes++;
    }
    return true;
  }), { numRuns: runs });
  return { target: 'Alertmanager payloads', cases: runs, crashes, note: [...statuses].map(([s, n]) => `${n}× ${s}`).join(', ') };
}

function fuzzReplies(runs: number): FuzzResult {
  let crashes = 0;
  let accepted = 0;
  const sent: Abnormal = { apiVersion: 'nodemedic.io/v1alpha1', kind: 'Abnormal', metadata: { name: 'a', namespace: 'default' }, spec: { source: 'Custom', nodeName: 'n' } };
  const reply = fc.oneof(fc.anything(), fc.record({ status: fc.anything() }), fc.record({ status: fc.dictionary(fc.constantFrom('identifiable', 'message', 'context', 'phase', 'output', 'reason'), fc.anything()) }));
  fc.assert(fc.property(fc.constantFrom(...PROCESSOR_KINDS), reply, (kind, body) => {
    try {
      if (interpretReply(kind, sent, body).ok) accepted++;
    } catch {
      crashes++;
    }
    return true;
  }), { numRuns: runs });
  return { target: 'processor replies (HTTP, script)', cases: runs, crashes, note: `${accepted} taken, the rest refused with a reason` };
}

function fuzzKmsg(runs: number): FuzzResult {
  let crashes = 0;
  let parsed = 0;
  const record = fc.oneof(fc.string(), fc.tuple(fc.integer(), fc.integer(), fc.integer(), fc.string()).map(([p, s, u, m]) => `${p},${s},${u},-;${m}\n`));
  fc.assert(fc.property(record, (text) => {
    try {
      if (parseKmsgRecord(text)) parsed++;
    } catch {
      crashes++;
    }
    return true;
  }), { numRuns: runs });
  return { target: 'kernel log records', cases: runs, crashes, note: `${parsed} read as records` };
}

async function fuzzAbnormalFiles(runs: number): Promise<FuzzResult> {
  let crashes = 0;
  let valid = 0;
  const dir = await mkdtemp(path.join(tmpdir(), 'nodemedic-fuzz-'));
  try {
    await mkdir(path.join(dir, 'abnormals'));
    const text = fc.oneof(
      fc.string(),
      fc.anything().map((v) => JSON.stringify(v) ?? ''),
      fc.record({ spec: fc.record({ source: fc.constantFrom('Custom', 'Log', 'Gossip'), nodeName: fc.oneof(fc.constant('demo'), fc.string()) }, { requiredKeys: [] }), status: fc.anything() }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
    );
    let n = 0;
    await fc.assert(fc.asyncProperty(text, async (content) => {
      const name = `f${++n}`;
      // A store started afresh on each file reads it as the agent would at start.
      const store = new FileStore({ dir, log, settleMs: 0, rescanMs: 3_600_000 });
      try {
        await writeFile(path.join(dir, 'abnormals', `${name}.json`), content);
        await store.start(() => {});
        if (await store.get(`default/${name}`)) valid++;
      } catch {
        crashes++;
      } finally {
        await store.stop();
        await rm(path.join(dir, 'abnormals', `${name}.json`), { force: true });
      }
      return true;
    }), { numRuns: runs });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { target: 'Abnormal files (file store)', cases: runs, crashes, note: `${valid} valid` };
}

export async function fuzz(scale = 1): Promise<FuzzResult[]> {
  return [
    fuzzRules(Math.round(2000 * scale)),
    await fuzzRealRules(Math.round(1000 * scale)),
    fuzzAlerts(Math.round(2000 * scale)),
    fuzzReplies(Math.round(5000 * scale)),
    fuzzKmsg(Math.round(5000 * scale)),
    await fuzzAbnormalFiles(Math.round(300 * scale)),
  ];
}
