// Subscription selectors, as the broker reads them (runtime/common/src/selector.cpp):
// "a/b" the topic a/b only; "a/b/*" its children; "a/b//" a/b and everything below it;
// "*" every top-level topic; "//" every topic. The client matches them too, to hand each
// update to the subscriptions that asked for its topic.

const MAX_TOPIC_PATH_BYTES = 1024;

export type SelectorKind = 'exact' | 'children' | 'descendants';

export interface Selector {
  readonly kind: SelectorKind;
  readonly base: string; // the path without "/*" or "//"; "" for "*" and "//"
  readonly text: string;
}

// A valid topic path: non-empty, no empty segment (no leading, trailing or doubled '/'), no
// control character, and no segment that is "*".
export function isValidTopicPath(path: string): boolean {
  if (path.length === 0 || new TextEncoder().encode(path).length > MAX_TOPIC_PATH_BYTES) return false;
  for (const segment of path.split('/')) {
    if (segment.length === 0 || segment === '*') return false;
  }
  for (let i = 0; i < path.length; ++i) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return true;
}

export function parseSelector(text: string): Selector | undefined {
  if (text === '//') return { kind: 'descendants', base: '', text };
  if (text === '*') return { kind: 'children', base: '', text };
  let kind: SelectorKind = 'exact';
  let base = text;
  if (text.endsWith('//')) {
    kind = 'descendants';
    base = text.slice(0, -2);
  } else if (text.endsWith('/*')) {
    kind = 'children';
    base = text.slice(0, -2);
  }
  if (!isValidTopicPath(base) || base.includes('*')) return undefined;
  return { kind, base, text };
}

function parentPath(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

export function selectorMatches(selector: Selector, path: string): boolean {
  if (path.length === 0) return false;
  switch (selector.kind) {
    case 'exact':
      return path === selector.base;
    case 'children':
      return parentPath(path) === selector.base;
    case 'descendants':
      // A prefix counts only at a segment boundary: "a/b//" does not match "a/bc".
      return (
        selector.base === '' ||
        path === selector.base ||
        (path.startsWith(selector.base) && path[selector.base.length] === '/')
      );
  }
}
