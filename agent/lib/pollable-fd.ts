// A readable stream over a descriptor that can be waited on with epoll but that Node's public API does
// not wrap: a character device such as /dev/kmsg. `net.Socket({ fd })` refuses it ("Unsupported fd
// type: FILE") and `fs` reads it through the thread pool, where a blocking read cannot be cancelled —
// so the only public way to follow it is to poll, which wakes an idle process ten times a second.
// libuv's pipe handle waits on any pollable descriptor, so the descriptor is handed to one through
// `process.binding('pipe_wrap')`: an internal interface, deprecated since Node 10 but still there in
// Node 20 and 24. Where it is gone or refuses the descriptor, undefined: the caller polls instead.
import { Socket } from 'node:net';

type PipeBinding = { Pipe: new (type: number) => { open(fd: number): number; close(): void }; constants: { SOCKET: number } };

/**
 * A socket that waits on `fd` and hands what each read(2) returns to `onRead` (in `buffer`, the first
 * `length` bytes), or undefined where this Node cannot wait on it. `onRead` returning false pauses the
 * socket until its resume(); nothing is read meanwhile. The socket owns the descriptor from then on:
 * destroying it closes `fd`, and so does a read error (EPIPE on /dev/kmsg), after which it emits 'error'.
 */
export function pollableStream(fd: number, buffer: Buffer, onRead: (length: number, buffer: Buffer) => boolean | void): Socket | undefined {
  let binding: PipeBinding;
  try {
    binding = (process as unknown as { binding(name: string): PipeBinding }).binding('pipe_wrap');
  } catch {
    return undefined;
  }
  const handle = new binding.Pipe(binding.constants.SOCKET);
  if (handle.open(fd) !== 0) {
    handle.close(); // a negative errno: the descriptor cannot be polled
    return undefined;
  }
  return new Socket({ handle, readable: true, writable: false, onread: { buffer, callback: onRead } } as ConstructorParameters<typeof Socket>[0]);
}
