// Reading a body someone else sends — an HTTP request, a processor's reply, a probed server's page —
// without letting the sender decide how much memory the agent spends: the stream is read chunk by chunk
// and reading stops at a cap; it is never buffered whole first.
import type { Readable } from 'node:stream';

export class TooLarge extends Error {
  constructor(readonly limit: number) {
    super(`larger than the ${limit}-byte limit`);
    this.name = 'TooLarge';
  }
}

export type CappedReadOptions = {
  /** Past the cap: throw TooLarge (false, the default), or resolve with the first `max` bytes and `cut: true`. */
  cut?: boolean;
  /**
   * Destroy the stream past the cap (the default). An HTTP server passes false: destroying a request
   * destroys its socket, and the 413 reply must still go out; it closes the connection after replying.
   */
  destroy?: boolean;
};

/** The stream's bytes as UTF-8 text, at most `max` bytes of them. */
export function readCapped(stream: Readable, max: number, options: CappedReadOptions = {}): Promise<{ text: string; cut: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const text = () => Buffer.concat(chunks).toString('utf8');
    const stop = () => {
      stream.off('data', onData).off('end', onEnd).off('error', onError);
      stream.on('error', () => {}); // what the stream says after this is no longer anyone's concern
      stream.pause();
      if (options.destroy !== false) stream.destroy();
    };
    function onData(raw: Buffer | string) {
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
      if (size + chunk.length > max) {
        chunks.push(chunk.subarray(0, max - size));
        stop();
        if (options.cut) resolve({ text: text(), cut: true });
        else reject(new TooLarge(max));
        return;
      }
      size += chunk.length;
      chunks.push(chunk);
    }
    function onEnd() {
      resolve({ text: text(), cut: false });
    }
    function onError(err: Error) {
      reject(err);
    }
    stream.on('data', onData).once('end', onEnd).once('error', onError);
  });
}
