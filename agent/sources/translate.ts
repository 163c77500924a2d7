// node-problem-detector's filelog translator: a log file's line is cut into a timestamp and a message by
// the rule file's `pluginConfig.timestamp` and `message` expressions (each the last group it captures,
// or its whole match if it has none), and the timestamp is read with `timestampFormat`, a Go time
// layout ("Jan _2 15:04:05", "2006-01-02T15:04:05.999999999-07:00"). A year the layout leaves out is
// this year, a zone it leaves out is local time, as in NPD. A line without either is passed over, as
// NPD passes it over.
import { linearRegExp } from '../lib/linear-regexp.js';
import { fromGoPattern, RuleError } from './rules.js';

/** The most of a line the expressions look at: a timestamp and a message start near its beginning. */
const TRANSLATE_WINDOW = 4096;

export type Translated = { message: string; at: number };

export class LineTranslator {
  private readonly timestamp: RegExp;
  private readonly message: RegExp;
  private readonly layout: TimeLayout;

  /** Throws RuleError naming the expression that cannot be used. */
  constructor(spec: { timestamp: string; message: string; timestampFormat: string }, where: string) {
    this.timestamp = expression(spec.timestamp, `${where} pluginConfig.timestamp`);
    this.message = expression(spec.message, `${where} pluginConfig.message`);
    try {
      this.layout = new TimeLayout(spec.timestampFormat);
    } catch (err) {
      throw new RuleError(`${where} pluginConfig.timestampFormat`, (err as Error).message);
    }
  }

  translate(line: string): Translated | undefined {
    const text = line.length > TRANSLATE_WINDOW ? line.slice(0, TRANSLATE_WINDOW) : line;
    const stamp = lastGroup(this.timestamp.exec(text));
    const message = lastGroup(this.message.exec(text));
    if (stamp === undefined || message === undefined) return undefined;
    const at = this.layout.parse(stamp);
    return Number.isNaN(at) ? undefined : { message, at };
  }
}

function expression(pattern: unknown, where: string): RegExp {
  if (typeof pattern !== 'string' || pattern === '') throw new RuleError(where, 'must be a regular expression');
  try {
    return linearRegExp(fromGoPattern(pattern));
  } catch (err) {
    throw new RuleError(where, (err as Error).message);
  }
}

/** What Go's FindStringSubmatch gives NPD, matches[len-1]: the last group, or the whole match. */
function lastGroup(match: RegExpExecArray | null): string | undefined {
  if (!match) return undefined;
  return match[match.length - 1] ?? '';
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

type Field = 'year' | 'year2' | 'month' | 'monthName' | 'day' | 'hour' | 'hour12' | 'minute' | 'second' | 'fraction' | 'pm' | 'zone' | 'ignored';

/** Go's reference-time elements, longest first where one begins another. */
const ELEMENTS: Array<[string, string, Field]> = [
  ['January', '[A-Za-z]+', 'monthName'], ['Jan', '[A-Za-z]{3}', 'monthName'],
  ['Monday', '[A-Za-z]+', 'ignored'], ['Mon', '[A-Za-z]{3}', 'ignored'], ['MST', '[A-Z]{3,5}|[+-]\\d{2,4}', 'ignored'],
  ['2006', '\\d{4}', 'year'], ['Z07:00:00', 'Z|[+-]\\d{2}:\\d{2}:\\d{2}', 'zone'], ['Z070000', 'Z|[+-]\\d{6}', 'zone'],
  ['Z07:00', 'Z|[+-]\\d{2}:\\d{2}', 'zone'], ['Z0700', 'Z|[+-]\\d{4}', 'zone'], ['Z07', 'Z|[+-]\\d{2}', 'zone'],
  ['-07:00:00', '[+-]\\d{2}:\\d{2}:\\d{2}', 'zone'], ['-070000', '[+-]\\d{6}', 'zone'], ['-07:00', '[+-]\\d{2}:\\d{2}', 'zone'],
  ['-0700', '[+-]\\d{4}', 'zone'], ['-07', '[+-]\\d{2}', 'zone'],
  ['01', '\\d{2}', 'month'], ['02', '\\d{2}', 'day'], ['_2', '[ \\d]?\\d', 'day'], ['03', '\\d{2}', 'hour12'], ['04', '\\d{2}', 'minute'],
  ['05', '\\d{2}', 'second'], ['06', '\\d{2}', 'year2'], ['15', '\\d{1,2}', 'hour'], ['PM', 'AM|PM', 'pm'], ['pm', 'am|pm', 'pm'],
  ['1', '\\d{1,2}', 'month'], ['2', '\\d{1,2}', 'day'], ['3', '\\d{1,2}', 'hour12'], ['4', '\\d{1,2}', 'minute'], ['5', '\\d{1,2}', 'second'],
];

/** A Go time layout, compiled once into an expression with a group per element. */
export class TimeLayout {
  private readonly expression: RegExp;
  private readonly fields: Field[] = [];

  constructor(layout: string) {
    if (typeof layout !== 'string' || layout === '') throw new Error('must be a Go time layout, e.g. "Jan _2 15:04:05"');
    let source = '';
    for (let i = 0; i < layout.length;) {
      // A fraction of a second: .000 (exactly so many digits) or .999 (up to so many, or none).
      const fraction = /^[.,](0+|9+)(?![0-9])/.exec(layout.slice(i));
      if (fraction && this.fields.at(-1) === 'second') {
        const n = fraction[1]!.length;
        source += fraction[1]![0] === '0' ? `[.,](\\d{${n}})` : `(?:[.,](\\d{1,${n}}))?`;
        this.fields.push('fraction');
        i += fraction[0].length;
        continue;
      }
      const element = ELEMENTS.find(([name]) => layout.startsWith(name, i));
      if (element) {
        source += `(${element[1]})`;
        this.fields.push(element[2]);
        i += element[0].length;
      } else {
        source += layout[i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        i++;
      }
    }
    if (!this.fields.some((f) => f === 'hour' || f === 'hour12')) throw new Error(`"${layout}" has no hour (15 or 03): not a Go time layout`);
    this.expression = new RegExp(`^${source}$`);
  }

  /** The time `text` stands for (ms since the epoch), or NaN when it does not fit the layout. */
  parse(text: string): number {
    const match = this.expression.exec(text.trim());
    if (!match) return NaN;
    const now = new Date();
    const t = { year: now.getFullYear(), month: 0, day: 1, hour: 0, minute: 0, second: 0, ms: 0, pm: undefined as boolean | undefined, zone: undefined as number | undefined };
    this.fields.forEach((field, i) => {
      const value = match[i + 1];
      if (value === undefined) return;
      const n = Number(value.trim());
      switch (field) {
        case 'year': t.year = n; break;
        case 'year2': t.year = n + (n >= 69 ? 1900 : 2000); break;
        case 'month': t.month = n - 1; break;
        case 'monthName': t.month = MONTHS.indexOf(value.slice(0, 3).toLowerCase()); break;
        case 'day': t.day = n; break;
        case 'hour': case 'hour12': t.hour = n; break;
        case 'minute': t.minute = n; break;
        case 'second': t.second = n; break;
        case 'fraction': t.ms = Number(`0.${value}`) * 1000; break;
        case 'pm': t.pm = value.toLowerCase() === 'pm'; break;
        case 'zone': t.zone = value === 'Z' ? 0 : zoneMinutes(value); break;
      }
    });
    if (t.month < 0) return NaN;
    if (t.pm !== undefined) t.hour = (t.hour % 12) + (t.pm ? 12 : 0);
    if (t.zone === undefined) return new Date(t.year, t.month, t.day, t.hour, t.minute, t.second, t.ms).getTime();
    return Date.UTC(t.year, t.month, t.day, t.hour, t.minute, t.second, t.ms) - t.zone * 60_000;
  }
}

/** "+05:30", "-0700", "+02" as minutes east of UTC. */
function zoneMinutes(value: string): number {
  const digits = value.slice(1).replace(/:/g, '');
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || 0);
  return value[0] === '-' ? -minutes : minutes;
}
