// Regular expressions from outside the code — log rules, built-in or loaded from a file — run on every
// line a node logs, and V8's engine backtracks: one overlapping alternation such as `(a|a)*$` takes
// over 20 s on a 35-character line and pins the event loop. Two V8 switches, set when this module is
// first imported (before any rule is compiled: import it first):
//   - a pattern is accepted only if V8's linear-time engine can run it (compiled once with the `l`
//     flag): no back-references, no look-ahead, no counted repetition too large to unroll — nothing
//     Go's RE2, the syntax of node-problem-detector's rules, has either;
//   - matching uses the fast backtracking engine, which switches a match to the linear engine once it
//     has backtracked too much (V8's default threshold, 50,000 backtracks: about a millisecond).
// The linear engine is not used for every match: it is about 100 times slower on ordinary lines.
import v8 from 'node:v8';

v8.setFlagsFromString('--enable-experimental-regexp-engine');
v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

/** A RegExp whose every match runs in time linear in the input; throws SyntaxError saying why a pattern cannot be one. */
export function linearRegExp(source: string, flags = ''): RegExp {
  new RegExp(source, `${flags}l`); // throws "Cannot be executed in linear time" for what could backtrack without bound
  return new RegExp(source, flags);
}
