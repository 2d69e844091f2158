// The sessions table, slow ones first (brookd sorts by pending bytes), and the sessions that
// closed recently with the reason each was closed. Both are redrawn whole from each poll:
// they hold at most a few dozen rows.
import type { ClosedSession, Session, SessionPage } from './api.js';
import * as format from './format.js';

export class SessionsTable {
  private rows = 0;

  constructor(
    private readonly open: HTMLTableSectionElement,
    private readonly closed: HTMLTableSectionElement,
    private readonly note: HTMLElement,
  ) {}

  update(page: SessionPage): void {
    this.open.replaceChildren(...page.sessions.map(sessionRow));
    if (page.sessions.length === 0) this.open.append(emptyRow(11, 'No sessions.'));
    this.closed.replaceChildren(...page.closed.map(closedRow));
    if (page.closed.length === 0) this.closed.append(emptyRow(7, 'None closed yet.'));
    this.rows = page.sessions.length;
    this.note.textContent = page.total > page.sessions.length
      ? `the ${page.sessions.length} with most pending of ${format.count(page.total)}`
      : `${format.count(page.total)}`;
  }

  get sessionCount(): number {
    return this.rows;
  }
}

function sessionRow(s: Session): HTMLTableRowElement {
  const flags = [s.held_back ? 'held back' : '', s.holding_publishers ? 'holding publishers' : ''].filter(Boolean);
  const tr = row([
    text(s.id), text(s.principal), text(s.transport), text(s.address), text(s.state, `session-state ${s.state}`),
    num(format.count(s.pending_frames)), num(format.bytes(s.pending_bytes)), num(format.bytes(s.recovery_bytes)),
    num(format.duration(s.age_s)), num(format.duration(s.idle_s)), text(flags.join(', '), 'flags'),
  ]);
  tr.dataset.id = s.id;
  if (flags.length > 0) tr.classList.add('flagged');
  return tr;
}

function closedRow(s: ClosedSession): HTMLTableRowElement {
  const when = new Date(s.closed_at);
  const tr = row([
    text(Number.isNaN(when.getTime()) ? s.closed_at : when.toLocaleTimeString(), undefined, s.closed_at),
    text(s.id), text(s.principal), text(s.transport), text(s.address), num(format.duration(s.age_s)),
    text(s.reason, 'reason'),
  ]);
  tr.dataset.id = s.id;
  return tr;
}

function row(cells: HTMLTableCellElement[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}

function text(content: string, className?: string, title?: string): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = content;
  if (className) td.className = className;
  if (title) td.title = title;
  return td;
}

function num(content: string): HTMLTableCellElement {
  return text(content, 'num');
}

function emptyRow(columns: number, message: string): HTMLTableRowElement {
  const td = text(message, 'empty');
  td.colSpan = columns;
  return row([td]);
}
