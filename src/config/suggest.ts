// "did you mean" for unknown config keys: the known keys at a path, and the nearest by edit distance.
import type { z } from "zod";

interface Introspectable {
  shape?: Record<string, unknown>;
  def?: { innerType?: unknown; in?: unknown; element?: unknown; valueType?: unknown; options?: unknown[] };
}

/** Keys an object schema accepts at `path`, looking through defaults, pipes, arrays and records. */
export function knownKeysAt(schema: z.ZodType, path: readonly (string | number)[]): string[] {
  let node = unwrap(schema as unknown as Introspectable);
  for (const part of path) {
    if (!node) return [];
    if (typeof part === "number") node = unwrap(node.def?.element as Introspectable);
    else if (node.shape) node = unwrap(node.shape[part] as Introspectable);
    else if (node.def?.valueType) node = unwrap(node.def.valueType as Introspectable);
    else return [];
  }
  return node?.shape ? Object.keys(node.shape) : [];
}

function unwrap(node: Introspectable | undefined): Introspectable | undefined {
  let cur = node;
  for (let i = 0; i < 10 && cur && !cur.shape; i++) {
    const next = (cur.def?.innerType ?? cur.def?.in) as Introspectable | undefined;
    if (!next) break;
    cur = next;
  }
  return cur;
}

export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
