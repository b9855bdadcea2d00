// A value written into a YAML (or JSON-in-YAML) manifest as a scalar that reads back as exactly
// that value. Plain when that is provably safe (keeps today's manifests byte-identical, so an
// upgrade of binkube does not restart what did not change); JSON-quoted otherwise. JSON strings are
// valid YAML double-quoted scalars, and JSON escapes every newline, quote and control character.

/** Plain scalars that YAML 1.1 (Go's yaml.v2, which Kubernetes v1.17 reads with) would take as non-strings. */
const YAML11_NON_STRING = /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~|[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?0b[01_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?0o?[0-7_]+|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|\d{4}-\d\d?-\d\d?.*)$/;

/** Starts with a letter or digit, then only characters that have no meaning in a plain scalar here. */
const PLAIN_SAFE = /^[A-Za-z0-9][A-Za-z0-9._/@+=-]*(?::[A-Za-z0-9._/@+=-]+)*$/;

export function yamlScalar(v: string | number | boolean): string {
  if (typeof v !== "string") return JSON.stringify(v);
  return PLAIN_SAFE.test(v) && !YAML11_NON_STRING.test(v) ? v : JSON.stringify(v);
}
