// The mechanisms in agent/lib on their own: the backoff's waits, reading a stream with a cap, and
// bytes in chunks made text.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import vm from 'node:vm';
import { Backoff } from '../../agent/lib/backoff.js';
import { TooLarge, readCapped } from '../../agent/lib/capped-read.js';
import { Utf8Chunks } from '../../agent/lib/utf8-chunks.js';
import { httpDate, utcIsoString } from '../../agent/lib/utc-dates.js';

test('backoff: 0.5 s doubling to 30 s, and short again after a reset; an aborted wait ends at once', async () => {
  const backoff = new Backoff();
  assert.deepEqual(Array.from({ length: 9 }, () => backoff.next()), [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  backoff.reset();
  assert.equal(backoff.peek, 500);
  const stop = new AbortController();
  const waiting = new Backoff(3_600_000).wait(stop.signal);
  stop.abort();
  await waiting; // an hour's wait, ended by the abort: the test would time out otherwise
});

/** A stream of `chunks` chunks of `size` bytes, and how many of them were pulled from it. */
function source(chunks: number, size: number) {
  let pulled = 0;
  const stream = new Readable({
    read() {
      pulled++;
      this.push(pulled <= chunks ? Buffer.alloc(size, 'a') : null);
    },
  });
  return { stream, pulled: () => pulled };
}

test('capped read: within the cap the whole text; past it TooLarge, or the first bytes with cut; reading stops at the cap', async () => {
  assert.deepEqual(await readCapped(source(3, 10).stream, 100), { text: 'a'.repeat(30), cut: false });
  const endless = source(1_000_000, 64 * 1024);
  await assert.rejects(readCapped(endless.stream, 256 * 1024), (err) => err instanceof TooLarge && err.limit === 256 * 1024);
  assert.ok(endless.pulled() < 20, `stopped near the cap: ${endless.pulled()} chunks of 64 KiB were pulled for a 256 KiB cap`);
  assert.ok(endless.stream.destroyed, 'the stream is destroyed');
  const kept = await readCapped(source(10, 10).stream, 25, { cut: true });
  assert.deepEqual(kept, { text: 'a'.repeat(25), cut: true });
  const open = source(10, 10);
  await assert.rejects(readCapped(open.stream, 25, { destroy: false }), TooLarge);
  assert.equal(open.stream.destroyed, false, 'left for the caller to close (an HTTP server still has to reply)');
});

test('bytes cut into chunks anywhere become the text the whole gives, with at most 3 bytes held back for a character not yet complete', () => {
  // Bytes near UTF-8's edges: ASCII, lead bytes, continuation bytes, and bytes that are never UTF-8.
  const byte = fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xbf }), fc.integer({ min: 0xc0, max: 0xff }));
  fc.assert(fc.property(fc.array(byte, { maxLength: 40 }), fc.array(fc.nat(40)), (bytes, cuts) => {
    const whole = Buffer.from(bytes);
    const at = [...new Set(cuts.map((c) => Math.min(c, whole.length)))].sort((a, b) => a - b);
    const text = new Utf8Chunks();
    let got = '';
    let from = 0;
    for (const to of [...at, whole.length]) {
      got += text.decode(whole.subarray(from, to));
      assert.ok(text.heldBytes <= 3);
      from = to;
    }
    // What is still held is the start of a character the bytes end in the middle of.
    assert.equal(got, whole.subarray(0, whole.length - text.heldBytes).toString('utf8'));
  }), { numRuns: 2000 });
});

test("toISOString from the UTC fields: V8's string for every date, installed for JSON too, the same errors", () => {
  // A fresh context's Date still has V8's own toISOString: importing the module replaced this realm's.
  const V8Date = vm.runInNewContext('Date') as DateConstructor;
  assert.match(V8Date.prototype.toISOString.toString(), /\[native code\]/);
  assert.doesNotMatch(Date.prototype.toISOString.toString(), /\[native code\]/, 'the module replaces Date.prototype.toISOString');
  const anyTime = fc.oneof(fc.integer({ min: -8.64e15, max: 8.64e15 }), fc.integer({ min: -62_198_755_200_000, max: 253_402_300_799_999 })); // any date; years -1..9999
  fc.assert(fc.property(anyTime, (t) => {
    const expected = new V8Date(t).toISOString();
    assert.equal(utcIsoString(new Date(t)), expected);
    assert.equal(new Date(t).toISOString(), expected);
    assert.equal(JSON.stringify({ at: new Date(t) }), `{"at":"${expected}"}`);
  }), { numRuns: 20_000 });
  for (const t of [0, -1, 8.64e15, -8.64e15, Date.UTC(10_000, 0, 1), Date.UTC(10_000, 0, 1) - 1]) assert.equal(new Date(t).toISOString(), new V8Date(t).toISOString());
  assert.throws(() => new Date(NaN).toISOString(), (err) => err instanceof RangeError && err.message === new RangeError('Invalid time value').message);
  assert.throws(() => Date.prototype.toISOString.call({}), TypeError);
});

test("the HTTP Date header from the UTC fields: V8's toUTCString for every date of years 1000-9999", () => {
  const V8Date = vm.runInNewContext('Date') as DateConstructor;
  fc.assert(fc.property(fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(10_000, 0, 1) - 1 }), (t) => {
    assert.equal(httpDate(new Date(t)), new V8Date(t).toUTCString());
  }), { numRuns: 20_000 });
});
