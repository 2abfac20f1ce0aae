// Text format of the QEMU cross-check table: one case per line, tab-separated:
// name, control word, pushed values (comma-separated 'sexp:significand'), memory slot before,
// escape+ModRM (4 hex digits), EFLAGS before, then the results: status word, ST(0), ST(1), memory
// slot after, EFLAGS after. Numbers are hex.

export interface TableRow {
  name: string;
  cw: number;
  push: string[];
  mem: string;
  op: [number, number];
  eflags: number;
  expected: { status: number; st0: string; st1: string; mem: string; eflags: number };
}

export function writeTable(rows: TableRow[]): string {
  const lines = rows.map((r) =>
    [
      r.name,
      r.cw.toString(16),
      r.push.join(","),
      r.mem,
      ((r.op[0] << 8) | r.op[1]).toString(16),
      r.eflags.toString(16),
      r.expected.status.toString(16),
      r.expected.st0,
      r.expected.st1,
      r.expected.mem,
      r.expected.eflags.toString(16),
    ].join("\t"),
  );
  return `${lines.join("\n")}\n`;
}

export function readTable(text: string): TableRow[] {
  const rows: TableRow[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split("\t");
    if (f.length !== 11) throw new Error(`malformed table line: ${line}`);
    const op = Number.parseInt(f[4], 16);
    rows.push({
      name: f[0],
      cw: Number.parseInt(f[1], 16),
      push: f[2] === "" ? [] : f[2].split(","),
      mem: f[3],
      op: [op >> 8, op & 0xff],
      eflags: Number.parseInt(f[5], 16),
      expected: {
        status: Number.parseInt(f[6], 16),
        st0: f[7],
        st1: f[8],
        mem: f[9],
        eflags: Number.parseInt(f[10], 16),
      },
    });
  }
  return rows;
}
