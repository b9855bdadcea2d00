// Plain-text tables for the terminal: columns padded to the widest cell (capped, with "…").

export function formatTable(head: string[], rows: string[][], maxWidth = Infinity): string {
  const widths = head.map((h, i) => Math.min(maxWidth, Math.max(h.length, ...rows.map((c) => c[i]!.length))));
  const fmt = (c: string[]) => c.map((v, i) => (v.length > widths[i]! ? v.slice(0, widths[i]! - 1) + "…" : v.padEnd(widths[i]!))).join("  ").trimEnd();
  return [fmt(head), ...rows.map(fmt)].join("\n");
}
