// Log rules: lines in, symptoms out. Two file formats load into the same RuleSet:
//   - node-problem-detector's system-log-monitor JSON, as it is (plugin, logPath, lookback, bufferSize,
//     source, conditions, rules: [{type, condition, reason, pattern}]), so a team moving from NPD keeps
//     its rules;
//   - nodemedic's own YAML (kind: LogRules), which adds what a created Abnormal should carry and how
//     many lines after a match belong to it (a kernel stack trace is one symptom).
//
// Matching follows NPD: a rule matches when its pattern matches at the end of the newest line, where
// the "newest line" is the last `bufferSize` lines joined with \n for a rule whose pattern contains \n
// (a multi-line rule). Go's regexp is linear-time and V8's backtracks, so every pattern is compiled
// as a TailPattern (tail-pattern.ts): one V8's linear engine cannot run, or that repeats too much, is
// refused, naming the rule, and one evaluation costs a few milliseconds at most, whatever the line
// (a long line is seen through its last 2,048 characters). A leading `.*` (what makes NPD's rules
// quadratic in V8) is dropped, which changes no match; constructs V8 would read differently from Go
// are refused; and each rule is prefiltered on a literal it must contain, so most lines never reach a
// regular expression.
import { SHORT_TEXT, TailPattern } from './tail-pattern.js'; // first: it sets V8's flags before any rule is compiled
import { parse } from 'yaml';

export type RuleSpec = {
  reason: string;
  pattern: string;
  /** NPD: temporary (an event) or permanent (a node condition). Kept on the Abnormal as information. */
  type?: 'temporary' | 'permanent';
  condition?: string;
  /** Lines after the match that belong to the same symptom (a stack trace): up to maxLines, or until a line matching `until`. */
  collect?: { maxLines: number; until?: string };
  /** Merged into the Abnormal created for a match (nodemedic format only), e.g. skipRecovery, assignedDiagnosers. */
  abnormal?: Record<string, unknown>;
};

export type RuleSetSpec = {
  /** Where the lines come from: kmsg (/dev/kmsg), file, or journald. */
  plugin: 'kmsg' | 'file' | 'journald';
  /** The file (file), the kernel device (kmsg), or the journald unit(s) (journald), as in NPD's logPath. */
  logPath: string;
  /** A name for the rule set, reported with each symptom (NPD's "source"). */
  source: string;
  bufferSize: number;
  rules: RuleSpec[];
  /** journald only: the journal directory (absent: the system journal), units and syslog identifiers to read. */
  journalDirectory?: string;
  units?: string[];
  identifiers?: string[];
};

export class RuleError extends Error {
  constructor(where: string, message: string) {
    super(`${where}: ${message}`);
    this.name = 'RuleError';
  }
}

export type CompiledRule = RuleSpec & {
  tail: TailPattern;
  multiLine: boolean;
  /** A string every matching line (the newest line) contains; undefined when none could be found. */
  literal?: string;
  until?: TailPattern;
};

export type RuleSet = Omit<RuleSetSpec, 'rules'> & { rules: CompiledRule[] };

/** Go (RE2) syntax that V8 reads differently or not at all; refused rather than guessed at. */
const UNSUPPORTED: Array<[RegExp, string]> = [
  [/\\[QEzAC]/, 'uses \\Q, \\E, \\z, \\A or \\C, which JavaScript lacks'],
  [/\[\[:/, 'uses a POSIX class such as [[:alpha:]], which JavaScript lacks'],
  [/\(\?[imsU-]+[:)]/, 'uses inline flags other than a leading (?i)'],
  [/\\p\{/, 'uses \\p{...}, which needs care in JavaScript'],
];

/** Compile one rule; throws RuleError saying which rule and why. */
export function compileRule(rule: RuleSpec, where: string): CompiledRule {
  if (typeof rule.reason !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(rule.reason)) {
    throw new RuleError(where, `reason must be a CamelCase word (got ${JSON.stringify(rule.reason)})`);
  }
  if (typeof rule.pattern !== 'string' || rule.pattern === '') throw new RuleError(where, 'pattern must be a non-empty string');
  let source = rule.pattern;
  let flags = '';
  if (source.startsWith('(?i)')) {
    flags = 'i';
    source = source.slice(4);
  }
  for (const [test, why] of UNSUPPORTED) if (test.test(source)) throw new RuleError(where, `pattern ${why}`);
  source = source.replace(/\(\?P</g, '(?<'); // Go's named groups
  // A leading .* or .+ changes no match of a pattern anchored at the end, and is what makes V8 slow.
  source = source.replace(/^(?:\.\*)+/, '').replace(/^\.\+/, '.');
  let tail: TailPattern;
  try {
    new RegExp(`(?:${source})$`, flags); // plain syntax first, so that a typo is called one
  } catch (err) {
    throw new RuleError(where, `pattern is not a valid regular expression: ${(err as Error).message}`);
  }
  try {
    tail = new TailPattern(source, flags);
  } catch (err) {
    throw new RuleError(where, `pattern cannot be matched in linear time at a bounded cost (back-references, look-arounds, large counted repetitions and too many repetitions cannot), so a line could hang the agent: ${(err as Error).message}`);
  }
  const multiLine = source.includes('\\n');
  const lastLine = multiLine ? source.slice(source.lastIndexOf('\\n') + 2) : source;
  let until: TailPattern | undefined;
  if (rule.collect) {
    if (!Number.isInteger(rule.collect.maxLines) || rule.collect.maxLines < 1 || rule.collect.maxLines > 1000) {
      throw new RuleError(where, 'collect.maxLines must be an integer from 1 to 1000');
    }
    if (rule.collect.until !== undefined) until = compileRule({ reason: 'Until', pattern: rule.collect.until }, `${where} collect.until`).tail;
  }
  const literal = flags ? undefined : longestLiteral(lastLine);
  return { ...rule, tail, multiLine, ...(literal ? { literal } : {}), ...(until ? { until } : {}) };
}

/**
 * The longest run of plain characters the pattern requires, e.g. " blocked for more than " from
 * `task [\S ]+:\d+ blocked for more than \d+ seconds\.`. Conservative: a top-level alternation, or
 * anything not understood, gives no literal (the regex then always runs).
 */
export function longestLiteral(pattern: string): string | undefined {
  let best = '';
  let run = '';
  let depth = 0;
  const end = () => {
    if (run.length > best.length) best = run;
    run = '';
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      i++;
      if (depth === 0 && /[^A-Za-z0-9]/.test(next)) run += next; // an escaped punctuation mark is itself
      else end(); // \d, \S, \w, ...
    } else if (c === '[') {
      end();
      let j = i + 1;
      if (pattern[j] === '^') j++;
      if (pattern[j] === ']') j++; // a ] first in a class is a literal ]
      while (j < pattern.length && pattern[j] !== ']') j += pattern[j] === '\\' ? 2 : 1;
      if (j >= pattern.length) return undefined;
      i = j;
    } else if (c === '(') {
      end();
      depth++;
    } else if (c === ')') {
      depth--;
    } else if (c === '|') {
      if (depth === 0) return undefined;
    } else if ('?*{'.includes(c)) {
      run = run.slice(0, -1); // the character before is optional
      end();
      if (c === '{') {
        i = pattern.indexOf('}', i);
        if (i < 0) return undefined;
      }
    } else if ('+.^$'.includes(c)) {
      end();
    } else if (depth === 0) {
      run += c;
    }
  }
  end();
  return best.length >= 3 ? best : undefined;
}

// --- loading ---

const NPD_PLUGINS = new Set(['kmsg', 'filelog', 'journald']);

/** Parse a rules file: NPD's JSON (has "plugin") or nodemedic's YAML (kind: LogRules). */
export function parseRuleSet(text: string, file: string): RuleSet {
  let raw: Record<string, unknown>;
  try {
    raw = parse(text) as Record<string, unknown>; // YAML is a superset of JSON
  } catch (err) {
    throw new RuleError(file, `not YAML or JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object') throw new RuleError(file, 'must hold an object');
  const spec = raw.kind === 'LogRules' ? fromNodemedic(raw, file) : fromNPD(raw, file);
  return compileRuleSet(spec, file);
}

/** Compile every rule of a rule set; throws RuleError naming the first bad rule. */
export function compileRuleSet(spec: RuleSetSpec, where: string): RuleSet {
  if (!Array.isArray(spec.rules) || spec.rules.length === 0) throw new RuleError(where, 'rules must be a non-empty list');
  const rules = spec.rules.map((rule, i) => compileRule(rule, `${where} rules[${i}] (${(rule as RuleSpec)?.reason ?? '?'})`));
  return { ...spec, rules };
}

function fromNPD(raw: Record<string, unknown>, file: string): RuleSetSpec {
  const plugin = String(raw.plugin);
  if (!NPD_PLUGINS.has(plugin)) throw new RuleError(file, `plugin must be one of kmsg, filelog, journald (got ${JSON.stringify(raw.plugin)})`);
  const logPath = typeof raw.logPath === 'string' ? raw.logPath : plugin === 'kmsg' ? '/dev/kmsg' : '';
  // NPD's journald plugin: logPath is the journal directory, pluginConfig.source the syslog identifier.
  const identifier = (raw.pluginConfig as { source?: unknown } | undefined)?.source;
  return {
    plugin: plugin === 'filelog' ? 'file' : (plugin as 'kmsg' | 'journald'),
    logPath,
    source: typeof raw.source === 'string' ? raw.source : file,
    bufferSize: bufferSize(raw.bufferSize, file),
    rules: (raw.rules as RuleSpec[]) ?? [],
    ...(plugin === 'journald' ? { journalDirectory: logPath || undefined, units: [], identifiers: typeof identifier === 'string' ? [identifier] : [] } : {}),
  };
}

function fromNodemedic(raw: Record<string, unknown>, file: string): RuleSetSpec {
  const known = new Set(['apiVersion', 'kind', 'plugin', 'logPath', 'source', 'bufferSize', 'rules']);
  for (const key of Object.keys(raw)) if (!known.has(key)) throw new RuleError(file, `unknown key ${key}`);
  const plugin = String(raw.plugin);
  if (!['kmsg', 'file', 'journald'].includes(plugin)) throw new RuleError(file, `plugin must be one of kmsg, file, journald (got ${JSON.stringify(raw.plugin)})`);
  if (typeof raw.logPath !== 'string' || !raw.logPath) throw new RuleError(file, 'logPath is required');
  return {
    plugin: plugin as RuleSetSpec['plugin'],
    logPath: raw.logPath,
    source: typeof raw.source === 'string' ? raw.source : file,
    bufferSize: bufferSize(raw.bufferSize, file),
    rules: (raw.rules as RuleSpec[]) ?? [],
    // journald: logPath names the units, comma-separated
    ...(plugin === 'journald' ? { units: raw.logPath.split(',').map((u) => u.trim()).filter(Boolean) } : {}),
  };
}

function bufferSize(value: unknown, file: string): number {
  if (value === undefined) return 10;
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 1000) throw new RuleError(file, 'bufferSize must be an integer from 1 to 1000');
  return value as number;
}

// --- matching ---

export type LogMatch = {
  rule: CompiledRule;
  /** What matched: the newest line, or for a multi-line rule the lines from where the match starts. */
  text: string;
};

/** Feeds lines through one rule set, keeping the last bufferSize lines for multi-line rules. */
export class LogMatcher {
  private readonly buffer: string[] = [];
  private readonly hasMultiLine: boolean;
  /**
   * When every rule has a literal: the ordinary line, which holds none, is passed over at once. On a
   * short line one regular expression finds any of them in one pass (2.6 times faster than a search
   * per literal on a 46-character line); on a long one, V8's search for a plain string is faster.
   */
  private readonly anyLiteral?: { short: RegExp; literals: string[] };

  constructor(readonly ruleSet: RuleSet) {
    this.hasMultiLine = ruleSet.rules.some((r) => r.multiLine);
    const literals = ruleSet.rules.map((r) => r.literal);
    if (literals.every((l): l is string => l !== undefined)) {
      // A literal that holds another is found by that one ("BUG: soft lockup" by "BUG: "): left out.
      const unique = [...new Set(literals)];
      const needed = unique.filter((l) => !unique.some((other) => other !== l && l.includes(other)));
      this.anyLiteral = { short: new RegExp(needed.map((l) => l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')), literals: needed };
    }
  }

  private holdsAnyLiteral(line: string, any: { short: RegExp; literals: string[] }): boolean {
    return line.length <= SHORT_TEXT ? any.short.test(line) : any.literals.some((literal) => line.includes(literal));
  }

  push(line: string): LogMatch[] {
    if (this.hasMultiLine) {
      this.buffer.push(line);
      if (this.buffer.length > this.ruleSet.bufferSize) this.buffer.shift();
    }
    if (this.anyLiteral && !this.holdsAnyLiteral(line, this.anyLiteral)) return [];
    const matches: LogMatch[] = [];
    let joined: string | undefined;
    for (const rule of this.ruleSet.rules) {
      if (rule.literal !== undefined && !line.includes(rule.literal)) continue;
      if (!rule.multiLine) {
        if (rule.tail.test(line)) matches.push({ rule, text: line });
        continue;
      }
      joined ??= this.buffer.join('\n');
      const at = rule.tail.search(joined);
      if (at >= 0) {
        const start = joined.lastIndexOf('\n', at) + 1; // from the start of the line the match starts in
        matches.push({ rule, text: joined.slice(start) });
      }
    }
    return matches;
  }
}
