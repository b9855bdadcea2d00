/** POSIX sh quoting helpers. */

/** Quote one word for POSIX sh: 'it'\''s'. Refuses NUL, which no shell word can hold. */
export function shq(word: string): string {
  if (word.includes("\0")) throw new Error("shell word contains a NUL byte");
  if (word !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Run `command` as root through passwordless sudo: `sudo -n -- sh -c '…'`. */
export function sudoWrap(command: string): string {
  return `sudo -n -- sh -c ${shq(command)}`;
}

/**
 * Run `command` with `sh -c` under a host-side deadline: coreutils `timeout -s KILL` kills the
 * command's whole process group after `seconds` (when the host has `timeout`), so a command
 * whose client-side timeout fired does not linger on the host.
 */
export function deadlineWrap(command: string, seconds: number): string {
  const t = Math.max(1, Math.ceil(seconds));
  return `exec $(command -v timeout >/dev/null 2>&1 && echo timeout -s KILL ${t}) sh -c ${shq(command)}`;
}

/** Octal mode as chmod wants it: 0o644 → "0644". */
export function octal(mode: number): string {
  return mode.toString(8).padStart(4, "0");
}
