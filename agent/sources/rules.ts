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
  /** The Node conditions its permanent rules set, each with its reason and message while no fault holds it. */
  conditions?: ConditionSpec[];
  /** On the first start (no position kept yet): read what was logged this long ago, not only what comes next. */
  lookbackMs?: number;
  /** NPD's filelog: the line's timestamp and message, cut out by these expressions (translate.ts). */
  translate?: { timestamp: string; message: string; timestampFormat: string };
  /** NPD's filelog: lines holding any of these are passed over. */
  skipList?: string[];
};

export type ConditionSpec = { type: string; reason: string; message: string };

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

/**
 * A Go (RE2) pattern as a JavaScript one V8's linear engine can run; throws Error saying why it
 * cannot be. `(?i)` at the start makes the whole pattern caseless (then any later `(?i)`, as at the
 * start of each alternative in NPD's disk monitor, changes nothing); V8's linear engine has no
 * caseless mode, so each letter becomes a class of both cases.
 */
export function fromGoPattern(pattern: string): string {
  let source = pattern;
  const caseless = source.startsWith('(?i)');
  if (caseless) source = source.split('(?i)').join('');
  for (const [test, why] of UNSUPPORTED) if (test.test(source)) throw new Error(`pattern ${why}`);
  source = source.replace(/\(\?P</g, '(?<'); // Go's named groups
  return caseless ? bothCases(source) : source;
}

/** Every ASCII letter of a pattern matched in either case: `a` as [aA], [a-c] as [a-cA-C]. */
function bothCases(source: string): string {
  const other = (c: string) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase());
  const isLetter = (c: string | undefined) => c !== undefined && /^[A-Za-z]$/.test(c);
  let out = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (c === '\\') {
      out += source.slice(i, i + 2);
      i++;
    } else if (c === '[') {
      let j = i + 1;
      let body = '';
      if (source[j] === '^') body += source[j++];
      if (source[j] === ']') body += source[j++];
      let extra = '';
      while (j < source.length && source[j] !== ']') {
        if (source[j] === '\\') {
          body += source.slice(j, j + 2);
          j += 2;
        } else if (source[j + 1] === '-' && source[j + 2] !== undefined && source[j + 2] !== ']') {
          const [from, to] = [source[j]!, source[j + 2]!];
          body += `${from}-${to}`;
          if (isLetter(from) && isLetter(to)) extra += `${other(from)}-${other(to)}`;
          j += 3;
        } else {
          body += source[j];
          if (isLetter(source[j])) extra += other(source[j]!);
          j++;
        }
      }
      out += `[${body}${extra}]`;
      i = j;
    } else {
      out += isLetter(c) ? `[${c}${other(c)}]` : c;
    }
  }
  return out;
}

/** Compile one rule; throws RuleError saying which rule and why. */
export function compileRule(rule: RuleSpec, where: string): CompiledRule {
  if (typeof rule.reason !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(rule.reason)) {
    throw new RuleError(where, `reason must be a CamelCase word (got ${JSON.stringify(rule.reason)})`);
  }
  if (typeof rule.pattern !== 'string' || rule.pattern === '') throw new RuleError(where, 'pattern must be a non-empty string');
  const caseless = rule.pattern.startsWith('(?i)');
  let source: string;
  try {
    source = fromGoPattern(rule.pattern);
  } catch (err) {
    throw new RuleError(where, (err as Error).message);
  }
  // A leading .* or .+ changes no match of a pattern anchored at the end, and is what makes V8 slow.
  source = source.replace(/^(?:\.\*)+/, '').replace(/^\.\+/, '.');
  let tail: TailPattern;
  try {
    new RegExp(`(?:${source})$`); // plain syntax first, so that a typo is called one
  } catch (err) {
    throw new RuleError(where, `pattern is not a valid regular expression: ${(err as Error).message}`);
  }
  try {
    tail = new TailPattern(source);
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
  const literal = caseless ? undefined : longestLiteral(lastLine);
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

/** Conditions the kubelet owns: a rule file may not set them. */
const KUBELET_CONDITIONS = new Set(['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure', 'NetworkUnavailable']);

/** Check a rule file's conditions and its permanent rules' use of them; throws RuleError naming what is wrong. */
export function checkConditions(conditions: unknown, rules: Array<{ type?: string; condition?: string; reason?: string }>, where: string): ConditionSpec[] {
  if (conditions !== undefined && !Array.isArray(conditions)) throw new RuleError(where, 'conditions must be a list of {type, reason, message}');
  const declared = (conditions ?? []) as ConditionSpec[];
  declared.forEach((c, i) => {
    const at = `${where} conditions[${i}]`;
    if (!c || typeof c.type !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(c.type)) throw new RuleError(at, 'type must be a CamelCase word');
    if (KUBELET_CONDITIONS.has(c.type)) throw new RuleError(at, `${c.type} is the kubelet's own condition; a rule file may not set it`);
    if (typeof c.reason !== 'string' || !/^[A-Za-z][A-Za-z0-9]*$/.test(c.reason)) throw new RuleError(at, 'reason must be a CamelCase word');
    if (typeof c.message !== 'string') throw new RuleError(at, 'message must be a string');
  });
  rules.forEach((rule, i) => {
    const at = `${where} rules[${i}] (${rule?.reason ?? '?'})`;
    if (rule?.type !== undefined && rule.type !== 'temporary' && rule.type !== 'permanent') throw new RuleError(at, 'type must be temporary or permanent');
    if (rule?.type !== 'permanent') return;
    if (typeof rule.condition !== 'string') throw new RuleError(at, 'a permanent rule needs the condition it sets');
    // One the file does not declare is not set (NPD ignores it too): undeclaredConditions() says so.
  });
  return declared.map(({ type, reason, message }) => ({ type, reason, message }));
}

/** The permanent rules that name a condition their file does not declare: said at load time, never set. */
export function undeclaredConditions(conditions: ConditionSpec[] | undefined, rules: Array<{ type?: string; condition?: string; reason?: string }>): string[] {
  return rules.filter((r) => r.type === 'permanent' && r.condition && !(conditions ?? []).some((c) => c.type === r.condition))
    .map((r) => `rule ${r.reason}: condition ${r.condition} is not among the file's conditions, so it is not set on the Node (as node-problem-detector ignores it); declare it there to have it set`);
}

/** Compile every rule of a rule set; throws RuleError naming the first bad rule. */
export function compileRuleSet(spec: RuleSetSpec, where: string): RuleSet {
  if (!Array.isArray(spec.rules) || spec.rules.length === 0) throw new RuleError(where, 'rules must be a non-empty list');
  const conditions = checkConditions(spec.conditions, spec.rules, where);
  const rules = spec.rules.map((rule, i) => compileRule(rule, `${where} rules[${i}] (${(rule as RuleSpec)?.reason ?? '?'})`));
  return { ...spec, conditions, rules };
}

// --- matching ---

export type LogMatch = {
  rule: CompiledRule;
  /** What matched: the newest line, or for a multi-line rule the lines from where the match starts. */
  text: string;
};

/** An expression that finds any of the literals. */
export const anyOf = (literals: Iterable<string>, flags?: string) =>
  new RegExp([...literals].map((l) => l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), flags);

/** Feeds lines through one rule set, keeping the last bufferSize lines for multi-line rules. */
export class LogMatcher {
  private readonly buffer: string[] = [];
  readonly hasMultiLine: boolean;
  /**
   * When every rule has a literal: the ordinary line, which holds none, is passed over at once. On a
   * short line one regular expression finds any of them in one pass (2.6 times faster than a search
   * per literal on a 46-character line); on a long one, V8's search for a plain string is faster.
   */
  readonly anyLiteral?: { short: RegExp; literals: string[] };

  constructor(readonly ruleSet: RuleSet) {
    this.hasMultiLine = ruleSet.rules.some((r) => r.multiLine);
    const literals = ruleSet.rules.map((r) => r.literal);
    if (literals.every((l): l is string => l !== undefined)) {
      // A literal that holds another is found by that one ("BUG: soft lockup" by "BUG: "): left out.
      const unique = [...new Set(literals)];
      const needed = unique.filter((l) => !unique.some((other) => other !== l && l.includes(other)));
      this.anyLiteral = { short: anyOf(needed), literals: needed };
    }
  }

  private holdsAnyLiteral(line: string, any: { short: RegExp; literals: string[] }): boolean {
    return line.length <= SHORT_TEXT ? any.short.test(line) : any.literals.some((literal) => line.includes(literal));
  }

  /**
   * The rules that match `line`. `whole`, the line `line` was cut from (NPD's filelog message): when
   * nothing matches the message, the single-line rules are tried on the whole line as well.
   */
  push(line: string, whole?: string): LogMatch[] {
    if (this.hasMultiLine) {
      this.buffer.push(line);
      if (this.buffer.length > this.ruleSet.bufferSize) this.buffer.shift();
    }
    const matches = this.match(line, true);
    return matches.length > 0 || whole === undefined || whole === line ? matches : this.match(whole, false);
  }

  private match(line: string, multiLine: boolean): LogMatch[] {
    if (this.anyLiteral && !this.holdsAnyLiteral(line, this.anyLiteral)) return [];
    const matches: LogMatch[] = [];
    let joined: string | undefined;
    for (const rule of this.ruleSet.rules) {
      if (rule.literal !== undefined && !line.includes(rule.literal)) continue;
      if (!rule.multiLine) {
        if (rule.tail.test(line)) matches.push({ rule, text: line });
        continue;
      }
      if (!multiLine) continue;
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
