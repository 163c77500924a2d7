// A log source: one reader of lines (kernel log, file, journal: agent/node) and the rule sets that read
// it — several rule files on one log share one reader and its one position, as they would share the
// log. Each match becomes a symptom. A rule with `collect` keeps the lines after its match (a kernel
// stack trace) and emits one symptom with all of them: after `maxLines`, at a line matching `until`,
// or after a second of quiet.
//
// What a rule sees of a line, as node-problem-detector has it: the line with its leading and trailing
// blanks trimmed; for NPD's filelog, the message its expressions cut out of the line (translate.ts),
// lines older than `lookback` before the agent started and lines holding a `skipList` entry passed
// over. Where the message hides a rule (monitor-files.ts hiddenRules), the rule is tried on the whole
// line as well, so nodemedic fires where NPD's own expression would keep it silent.
import type { Logger } from 'pino';
import { LIMITS } from '../api/crds.js';
import { fitText } from '../api/limits.js';
import type { LineReader } from '../node/line-reader.js';
import { LogMatcher, anyOf, type CompiledRule, type RuleSet } from './rules.js';
import type { Symptom, SymptomSource } from './source.js';
import type { LineTranslator } from './translate.js';

const QUIET_MS = 1000;

/** One rule set reading the shared reader's lines. */
export type LogFeed = { ruleSet: RuleSet; translator?: LineTranslator };

type Feed = LogFeed & { matcher: LogMatcher; oldest: number };
type Collecting = { feed: Feed; rule: CompiledRule; lines: string[]; timer: NodeJS.Timeout };

export class LogSource implements SymptomSource {
  readonly name: string;
  private readonly feeds: Feed[];
  private collecting: Collecting[] = [];
  /** What every rule of every feed needs one of (a line holding none is passed over in the reader), if that can be said. */
  private readonly sieve?: RegExp;
  private emit: (symptom: Symptom) => void = () => {};

  constructor(
    private readonly reader: LineReader,
    feeds: LogFeed | LogFeed[],
    private readonly log: Logger,
  ) {
    const started = Date.now();
    this.feeds = (Array.isArray(feeds) ? feeds : [feeds]).map((feed) => ({
      ...feed, matcher: new LogMatcher(feed.ruleSet), oldest: started - (feed.ruleSet.lookbackMs ?? Infinity),
    }));
    this.name = `${this.feeds.map((f) => f.ruleSet.source).join(', ')} (${reader.where})`;
    this.sieve = sieveOf(this.feeds.map((f) => f.matcher));
  }

  get lost(): number {
    return this.reader.lost ?? 0;
  }

  async start(emit: (symptom: Symptom) => void): Promise<void> {
    this.emit = emit;
    this.reader.passOver?.(this.sieve);
    await this.reader.start((line) => this.onLine(line));
    this.log.info({ source: this.name, rules: this.feeds.reduce((n, f) => n + f.ruleSet.rules.length, 0) }, 'log source started');
  }

  async stop(): Promise<void> {
    await this.reader.stop();
    for (const c of this.collecting) this.finish(c); // a trace cut short is still a symptom
  }

  private onLine(raw: string): void {
    const line = trimmed(raw);
    for (const feed of this.feeds) {
      const text = this.textFor(feed, line);
      if (text === undefined) continue;
      const matches = feed.matcher.push(text, feed.translator ? line : undefined);
      for (const c of [...this.collecting]) {
        if (c.feed !== feed) continue;
        // Kernel reports do not nest: a line that starts a new one ends the traces being collected.
        if (matches.length > 0) {
          this.finish(c);
          continue;
        }
        c.lines.push(text);
        if (c.lines.length > (c.rule.collect?.maxLines ?? 0) || c.rule.until?.test(text)) this.finish(c);
        else c.timer.refresh();
      }
      for (const match of matches) {
        if (!match.rule.collect) {
          this.emitMatch(feed, match.rule, match.text);
          continue;
        }
        const c: Collecting = { feed, rule: match.rule, lines: [match.text], timer: setTimeout(() => this.finish(c), QUIET_MS) };
        this.collecting.push(c);
        this.reader.passOver?.(undefined); // the lines after a match are the trace, literals or not
      }
    }
  }

  /** What this feed's rules see of the line, or undefined when they pass it over. */
  private textFor(feed: Feed, line: string): string | undefined {
    const { skipList } = feed.ruleSet;
    if (skipList && skipList.some((skip) => line.includes(skip))) return undefined;
    if (!feed.translator) return line;
    const translated = feed.translator.translate(line);
    if (!translated || translated.at < feed.oldest) return undefined;
    return trimmed(translated.message);
  }

  private finish(c: Collecting): void {
    clearTimeout(c.timer);
    this.collecting = this.collecting.filter((other) => other !== c);
    if (this.collecting.length === 0) this.reader.passOver?.(this.sieve);
    this.emitMatch(c.feed, c.rule, c.lines.join('\n'));
  }

  private emitMatch(feed: Feed, rule: CompiledRule, text: string): void {
    this.emit({
      source: 'Log',
      reason: rule.reason,
      detail: {
        ...rule.abnormal,
        log: { filePath: this.reader.where, logEntry: fitText(text, LIMITS.logEntry) },
        context: { rule: { source: feed.ruleSet.source, reason: rule.reason, type: rule.type ?? 'temporary', ...(rule.condition ? { condition: rule.condition } : {}) } },
      },
      seenAt: new Date(),
    });
  }
}

/**
 * One search for every literal the feeds' rules need, when each of their rules needs one and none spans
 * lines (a multi-line rule needs the lines before its match). Sound for NPD's filelog too: the message
 * a rule sees is cut out of the line, so a line without the literal has a message without it.
 */
function sieveOf(matchers: LogMatcher[]): RegExp | undefined {
  const literals = new Set<string>();
  for (const matcher of matchers) {
    if (!matcher.anyLiteral || matcher.hasMultiLine) return undefined;
    for (const literal of matcher.anyLiteral.literals) literals.add(sieveLiteral(literal));
  }
  if ([...literals].some((l) => l.includes('\n'))) return undefined;
  return anyOf(literals, 'g');
}

/**
 * What the sieve looks for in place of a literal: the literal without its leading ASCII spaces and
 * punctuation (" detected stalls" → "detected stalls"), unless too little would be left. A line that
 * holds the literal holds this too, and the search no longer stops at every space or colon of a log:
 * a third less CPU for the search on the kernel corpus (docs/design.md). (ASCII, not \p{L}: compiling a Unicode
 * property class touches a quarter MiB more of the node binary, measured alone on Node 24.)
 */
export function sieveLiteral(literal: string): string {
  const rest = literal.replace(/^[^A-Za-z0-9\u0080-\uffff]+/, '');
  return rest.length >= 4 ? rest : literal;
}

/** NPD's strings.TrimSpace: cheap when there is nothing to trim, which is nearly always. */
function trimmed(line: string): string {
  return line.length > 0 && (line.charCodeAt(0) <= 32 || line.charCodeAt(line.length - 1) <= 32) ? line.trim() : line;
}
