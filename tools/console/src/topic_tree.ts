// The live topic tree: topic paths split on '/' into nested, collapsible nodes. A node that is
// a topic shows its value, sequence, rate and subscribers; a value that changed since the
// last poll flashes. The tree is updated in place from each poll (nodes keep their open or
// closed state), and nodes whose topics are gone are removed.
import type { Topic } from './api.js';
import * as format from './format.js';

interface TopicCells {
  value: HTMLElement;
  meta: HTMLElement;
}

interface TreeNode {
  path: string;
  li: HTMLLIElement;
  count: HTMLElement; // how many topics are under a node with children
  children: Map<string, TreeNode>;
  list: HTMLUListElement | null; // made when the first child comes
  topic: TopicCells | null;
  lastValue: string | undefined;
  seen: number; // the poll that last listed this node's topic
}

const SHOWN_VALUE_CHARS = 300;

export class TopicTree {
  private readonly root: TreeNode;
  private poll = 0;
  private topics = 0;

  constructor(list: HTMLUListElement, private readonly empty: HTMLElement) {
    this.root = { path: '', li: document.createElement('li'), count: document.createElement('span'),
                  children: new Map(), list, topic: null, lastValue: undefined, seen: 0 };
  }

  // The topics of one poll, which are all the topics the tree should show.
  update(topics: Topic[]): void {
    this.poll += 1;
    for (const topic of topics) this.show(topic);
    this.topics = this.sweep(this.root);
    this.empty.hidden = this.topics > 0;
  }

  get topicCount(): number {
    return this.topics;
  }

  setAllOpen(open: boolean): void {
    const visit = (node: TreeNode) => {
      if (node !== this.root && node.list) node.li.classList.toggle('collapsed', !open);
      node.children.forEach(visit);
    };
    visit(this.root);
  }

  private show(topic: Topic): void {
    let node = this.root;
    for (const name of topic.path.split('/')) node = node.children.get(name) ?? this.addChild(node, name);
    node.seen = this.poll;
    if (!node.topic) node.topic = this.addTopicCells(node);
    const meta = `${topic.type} · seq ${format.count(topic.sequence)} · ${format.rate(topic.rate_per_s)}/s · ` +
                 `${topic.subscribers} sub${topic.subscribers === 1 ? '' : 's'}`;
    if (node.topic.meta.textContent !== meta) node.topic.meta.textContent = meta;
    const value = topic.value ?? '';
    if (value === node.lastValue) return;
    // A value brookd cut (past 4096 bytes) or that is too long to read in a row ends in '…';
    // the tooltip has what brookd sent.
    const cut = topic.value_truncated || value.length > SHOWN_VALUE_CHARS;
    node.topic.value.textContent = cut ? `${value.slice(0, SHOWN_VALUE_CHARS)}…` : value;
    node.topic.value.title = topic.value_truncated ? `${value}… (${format.bytes(topic.value_bytes)}, cut)` : value;
    if (node.lastValue !== undefined) flash(node.topic.value);
    node.lastValue = value;
  }

  private addChild(parent: TreeNode, name: string): TreeNode {
    if (!parent.list) {
      parent.list = document.createElement('ul');
      parent.li.append(parent.list);
      parent.li.classList.add('branch');
    }
    const li = document.createElement('li');
    const path = parent === this.root ? name : `${parent.path}/${name}`;
    li.dataset.path = path;
    const row = document.createElement('div');
    row.className = 'row';
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = name === '' ? '(empty)' : name;
    label.addEventListener('click', () => li.classList.toggle('collapsed'));
    const count = document.createElement('span');
    count.className = 'count';
    row.append(label, count);
    li.append(row);
    // Siblings stay in path order whatever order their topics first appear in.
    const after = [...parent.children.values()].find((sibling) => sibling.path > path);
    parent.list.insertBefore(li, after ? after.li : null);
    const node: TreeNode = { path, li, count, children: new Map(), list: null, topic: null, lastValue: undefined, seen: 0 };
    parent.children.set(name, node);
    return node;
  }

  private addTopicCells(node: TreeNode): TopicCells {
    const row = node.li.firstElementChild as HTMLElement;
    const value = document.createElement('span');
    value.className = 'value';
    const meta = document.createElement('span');
    meta.className = 'meta';
    row.append(value, meta);
    node.li.classList.add('topic');
    return { value, meta };
  }

  // Drops the topics this poll did not list and the nodes left with nothing under them;
  // returns how many topics are at or under `node`.
  private sweep(node: TreeNode): number {
    let topics = 0;
    for (const [name, child] of node.children) {
      const under = this.sweep(child);
      if (under === 0) {
        child.li.remove();
        node.children.delete(name);
      }
      topics += under;
    }
    if (node.topic && node.seen !== this.poll) {
      node.topic.value.remove();
      node.topic.meta.remove();
      node.topic = null;
      node.lastValue = undefined;
      node.li.classList.remove('topic');
    }
    if (node !== this.root && node.list && node.children.size === 0) {
      node.list.remove();
      node.list = null;
      node.li.classList.remove('branch', 'collapsed');
    }
    node.count.textContent = node.children.size > 0 ? `${topics}` : '';
    return topics + (node.topic ? 1 : 0);
  }
}

// Restarts the highlight animation: remove the class, force a style flush, add it again.
function flash(element: HTMLElement): void {
  element.classList.remove('changed');
  void element.offsetWidth;
  element.classList.add('changed');
}
