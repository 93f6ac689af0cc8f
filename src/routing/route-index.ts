// A segment trie over the routes, searched depth-first in specificity order: at each depth a literal
// child, then a one-segment child (* or :param), then "**"; a pattern that ends here comes last.
// That is exactly the left-to-right rank order of compareSpecificity, so the first route found is the
// most specific one; host classes (exact, wildcard, none) are separate tries searched in that order,
// and each leaf keeps its routes sorted (methods listed before any-method, then config order).
import { compareSpecificity, methodAndHostMatch, type CompiledRoute } from "./routes.ts";

interface TrieNode<T> {
  literal: Map<string, TrieNode<T>>;
  one: TrieNode<T> | null;
  /** Routes ending in "**" at this depth (match this prefix and anything below). */
  rest: CompiledRoute<T>[];
  /** Routes ending exactly here. */
  end: CompiledRoute<T>[];
}

export interface RouteIndex<T> {
  find(method: string, host: string | undefined, segments: readonly string[]): CompiledRoute<T> | null;
}

const node = <T>(): TrieNode<T> => ({ literal: new Map(), one: null, rest: [], end: [] });

export function buildRouteIndex<T>(routes: readonly CompiledRoute<T>[]): RouteIndex<T> {
  const tries = [node<T>(), node<T>(), node<T>()]; // exact host, wildcard host, no host
  const used = [false, false, false];
  for (const r of routes) {
    const cls = r.host === null ? 2 : r.host.startsWith("*.") ? 1 : 0;
    used[cls] = true;
    let n = tries[cls]!;
    for (const seg of r.segments) {
      if (seg.kind === "rest") break;
      if (seg.kind === "literal") {
        let next = n.literal.get(seg.value);
        if (!next) n.literal.set(seg.value, (next = node()));
        n = next;
      } else n = n.one ??= node();
    }
    (r.segments.at(-1)?.kind === "rest" ? n.rest : n.end).push(r);
  }
  const sortLeaves = (n: TrieNode<T>) => {
    n.rest.sort((a, b) => compareSpecificity(a, b) || a.order - b.order);
    n.end.sort((a, b) => compareSpecificity(a, b) || a.order - b.order);
    for (const c of n.literal.values()) sortLeaves(c);
    if (n.one) sortLeaves(n.one);
  };
  tries.forEach(sortLeaves);
  const active = tries.filter((_, i) => used[i]);
  return {
    find(method, host, segments) {
      for (const t of active) {
        const r = search(t, segments, 0, method, host);
        if (r !== null) return r;
      }
      return null;
    },
  };
}

function search<T>(n: TrieNode<T>, segs: readonly string[], i: number, method: string, host: string | undefined): CompiledRoute<T> | null {
  if (i < segs.length) {
    const lit = n.literal.get(segs[i]!);
    if (lit) {
      const r = search(lit, segs, i + 1, method, host);
      if (r !== null) return r;
    }
    if (n.one) {
      const r = search(n.one, segs, i + 1, method, host);
      if (r !== null) return r;
    }
    return pick(n.rest, method, host);
  }
  return pick(n.rest, method, host) ?? pick(n.end, method, host);
}

/** The trie walk has matched the path; only method and host are left to check. */
function pick<T>(routes: readonly CompiledRoute<T>[], method: string, host: string | undefined): CompiledRoute<T> | null {
  for (const r of routes) if (methodAndHostMatch(r, method, host)) return r;
  return null;
}
