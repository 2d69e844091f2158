// The odds table: one row per match, a cell per price. A cell whose text changes flashes
// (green when a price lengthens, red when it shortens, amber for a moved line), so that a
// person watching sees what just moved.

export interface Odds {
  Home_Spread: string;
  Home_Odds: string;
  Away_Spread: string;
  Away_Odds: string;
  Total: string;
  Over_Odds: string;
  Under_Odds: string;
}

interface Row {
  cells: Record<'spread' | 'moneyline' | 'total' | 'updates', HTMLTableCellElement>;
  updates: number;
}

// "Bills vs Dolphins" from "Distribution/Football/NFL/Bills vs Dolphins/Odds".
export function matchName(path: string): string {
  const parts = path.split('/');
  return parts.length >= 2 ? parts[parts.length - 2] : path;
}

// American odds as a number (for the direction of a change): "+120" -> 120, "-140" -> -140.
function price(text: string): number {
  return Number.parseFloat(text);
}

export class OddsTable {
  private readonly rows = new Map<string, Row>();

  constructor(private readonly body: HTMLTableSectionElement, private readonly empty: HTMLElement) {}

  show(path: string, odds: Odds): void {
    let row = this.rows.get(path);
    if (!row) row = this.addRow(path);
    row.updates += 1;
    this.set(row.cells.spread, `${odds.Home_Spread} / ${odds.Away_Spread}`, 'line');
    this.set(row.cells.moneyline, `${odds.Home_Odds} / ${odds.Away_Odds}`, 'price', price(odds.Home_Odds));
    this.set(row.cells.total, `${odds.Total} (o ${odds.Over_Odds} / u ${odds.Under_Odds})`, 'line');
    row.cells.updates.textContent = String(row.updates);
  }

  get size(): number {
    return this.rows.size;
  }

  private addRow(path: string): Row {
    const tr = document.createElement('tr');
    tr.dataset.path = path;
    const name = document.createElement('td');
    name.textContent = matchName(path);
    tr.append(name);
    const cell = (kind: string) => {
      const td = document.createElement('td');
      td.className = kind;
      tr.append(td);
      return td;
    };
    const row: Row = {
      cells: { spread: cell('line'), moneyline: cell('price'), total: cell('line'), updates: cell('count') },
      updates: 0,
    };
    // Matches in name order, wherever their first update came in the feed.
    const after = [...this.body.rows].find((r) => matchName(r.dataset.path ?? '') > matchName(path));
    this.body.insertBefore(tr, after ?? null);
    this.rows.set(path, row);
    this.empty.hidden = true;
    return row;
  }

  private set(td: HTMLTableCellElement, text: string, kind: 'line' | 'price', value?: number): void {
    if (td.textContent === text) return;
    const first = td.textContent === '';
    const before = td.dataset.value === undefined ? undefined : Number(td.dataset.value);
    td.textContent = text;
    if (value !== undefined) td.dataset.value = String(value);
    if (first) return;
    // Restart the animation: remove the class, force a style flush, add it again.
    td.classList.remove('up', 'down', 'changed');
    void td.offsetWidth;
    if (kind === 'price' && before !== undefined && value !== undefined && value !== before)
      td.classList.add(value > before ? 'up' : 'down');
    else td.classList.add('changed');
  }
}
