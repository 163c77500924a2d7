// A log rule's pattern as it runs on a line: NPD's semantics (the pattern matches at the end of the
// text) with a bound on what one evaluation may cost, whatever the line and whatever the pattern.
//
// Both of V8's engines are used, each where it is safe (agent/lib/linear-regexp.ts):
//   - texts up to SHORT_TEXT characters go to the backtracking engine, which is about 100 times
//     faster on ordinary lines; it falls back to the linear engine on excessive backtracking, and its
//     quadratic cases (a failed search retried at every start position, which V8 does not count as
//     backtracking) cost little on so short a text;
//   - longer texts go straight to the linear engine, on their last `window` characters only.
// The linear engine's cost per character grows with the threads it may follow at once, which come
// from the pattern's repetitions (patternWeight): measured here, 0.27–0.5 µs per unit of weight per
// character. So the window is the cost budget divided by the pattern's weight: 2,048 characters for
// a pattern of weight up to 4, 1,365 for the heaviest of our rules (6), fewer for a busier one, and a
// pattern heavier than MAX_WEIGHT is refused.
import { linearRegExp } from '../lib/linear-regexp.js'; // first: it sets V8's flags before any pattern is compiled

export const SHORT_TEXT = 256;
/** The most a rule ever sees of a line: the kernel's records are at most 1,024 characters. */
export const MAX_WINDOW = 2048;
/**
 * Weight × characters per evaluation. Measured, the linear engine costs 0.27–0.5 µs per unit of
 * weight per character, so about 4 ms at the worst: room for a busy machine under the 10 ms a line
 * may cost.
 */
export const MATCH_BUDGET = 8192;
export const MAX_WEIGHT = MATCH_BUDGET / SHORT_TEXT;

export class TailPattern {
  /** How many of a text's last characters this pattern sees. */
  readonly window: number;
  private readonly fast: RegExp;
  private readonly linear: RegExp;

  /** `source` is a JavaScript pattern; throws SyntaxError if it cannot run in linear time or repeats too much. */
  constructor(source: string, flags = '') {
    const weight = patternWeight(source);
    if (weight > MAX_WEIGHT) {
      throw new SyntaxError(`it repeats too much (weight ${weight}, at most ${MAX_WEIGHT}; x{2,5} counts as five copies of x): each repetition costs the linear-time matcher at every character`);
    }
    this.window = Math.min(MAX_WINDOW, Math.floor(MATCH_BUDGET / Math.max(1, weight)));
    this.fast = linearRegExp(`(?:${source})$`, flags);
    this.linear = new RegExp(`(?:${source})$`, `${flags}l`);
  }

  /** Where the match of the text's end starts (its leftmost start), or -1. */
  search(text: string): number {
    if (text.length <= SHORT_TEXT) return this.fast.exec(text)?.index ?? -1;
    const from = Math.max(0, text.length - this.window);
    const m = this.linear.exec(from > 0 ? text.slice(from) : text);
    return m ? from + m.index : -1;
  }

  test(text: string): boolean {
    return this.search(text) >= 0;
  }

  /** The pattern as V8 runs it, for messages and tests. */
  get source(): string {
    return this.fast.source;
  }
}

/**
 * How busy the linear engine can be on a pattern: roughly how many threads it may follow at once.
 * A repetition (`*`, `+`, `?`, each optional copy of `{m,n}`) counts one, and so does every character
 * or class inside a repeated part, once per copy: `a+` is 2, `(.|\s){2,5}` is 13, `(b+c?){3}` is 18; a
 * literal outside any repetition costs nothing (its thread dies at the first wrong character).
 * Alternatives add up. Read loosely: a `{` that is no quantifier is a plain character, as in JavaScript.
 */
export function patternWeight(source: string): number {
  type Term = { atoms: number; weight: number };
  const open: Term[] = [{ atoms: 0, weight: 0 }]; // the groups being read, innermost last
  let last: Term = { atoms: 0, weight: 0 }; // the term just read, for a quantifier after it
  const add = (term: Term) => {
    const into = open[open.length - 1]!;
    into.atoms += term.atoms;
    into.weight += term.weight;
    last = term;
  };
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    const quantifier = /^(?:[*+?]|\{(\d+)(,(\d*))?\})\??/.exec(source.slice(i, i + 24));
    if (quantifier) {
      const [text, min, comma, max] = quantifier;
      const copies = text[0] !== '{' ? 1 : comma && max !== '' ? Math.max(1, Number(max)) : Math.max(1, Number(min));
      const optional = text[0] !== '{' ? 1 : !comma ? 0 : max === '' ? 1 : Math.max(0, Number(max) - Number(min));
      const into = open[open.length - 1]!;
      into.atoms -= last.atoms; // replaced by its copies
      into.weight -= last.weight;
      add({ atoms: copies * last.atoms, weight: copies * (last.atoms + last.weight) + optional });
      last = { atoms: 0, weight: 0 };
      i += text.length;
    } else if (c === '(') {
      open.push({ atoms: 0, weight: 0 });
      // (?:  (?<name>  and look-arounds open a group too: their marks are no characters
      i += 1 + (/^\?(?::|<[A-Za-z_]\w*>|<?[=!])/.exec(source.slice(i + 1, i + 64))?.[0].length ?? 0);
    } else if (c === ')' && open.length > 1) {
      add(open.pop()!);
      i++;
    } else {
      i = c === '\\' ? i + 2 : c === '[' ? endOfClass(source, i) : i + 1;
      add(c === '|' ? { atoms: 0, weight: 0 } : { atoms: 1, weight: 0 });
    }
  }
  return open.reduce((sum, t) => sum + t.weight, 0);
}

function endOfClass(source: string, start: number): number {
  let i = start + 1;
  if (source[i] === '^') i++;
  if (source[i] === ']') i++; // a leading ] is a member
  while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
  return i + 1;
}
