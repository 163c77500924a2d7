// What a test needs beyond a plain user's process, as a `skip` value: false where it can run, else
// the reason it does not, which the test run prints. The unit layer needs none of these.

/** Root: writing to /dev/kmsg, running a container runtime, owning files as root. */
export const IS_ROOT = process.getuid?.() === 0;

/** For a test's `skip`: false as root, else why the test needs root. */
export const needsRoot = (why: string): false | string => (IS_ROOT ? false : `needs root (${why}); run the suite as root`);
