import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { eisaId, int, nameString, pkgLength } from "./aml.ts";
import {
  ACPI_RSDP_FILE,
  ACPI_TABLES_FILE,
  buildAcpiTables,
  checksum,
  linkAcpiTables,
  publishAcpiTables,
} from "./tables.ts";

const TABLES_AT = 0x07fe_0000;
const RSDP_AT = 0xf5a0;

function linked(hpet = true) {
  const blobs = buildAcpiTables({ ramBelow4g: 128 << 20, hpetAddress: hpet ? 0xfed0_0000 : undefined });
  const placed = linkAcpiTables(
    blobs.loader,
    { [ACPI_TABLES_FILE]: blobs.tables, [ACPI_RSDP_FILE]: blobs.rsdp },
    (name, _size, align, zone) => {
      if (name === ACPI_RSDP_FILE) {
        assert.equal(zone, 2, "RSDP goes to the F segment");
        assert.equal(align, 16);
        return RSDP_AT;
      }
      assert.equal(align, 64);
      return TABLES_AT;
    },
  );
  const tables = placed.get(ACPI_TABLES_FILE)!.bytes;
  const rsdp = placed.get(ACPI_RSDP_FILE)!.bytes;
  const view = new DataView(tables.buffer);
  const tableAt = (address: number) => {
    const offset = address - TABLES_AT;
    return tables.subarray(offset, offset + view.getUint32(offset + 4, true));
  };
  return { blobs, tables, rsdp, tableAt };
}

function sig(t: Uint8Array): string {
  return String.fromCharCode(...t.subarray(0, 4));
}

test("AML primitives", () => {
  assert.deepEqual(pkgLength(10), [11]);
  assert.deepEqual(pkgLength(0x3e), [0x3f]);
  assert.deepEqual(pkgLength(0x3f), [0x41, 0x04]); // 0x41 total, two bytes
  assert.deepEqual(pkgLength(0x1000), [0x83, 0x00, 0x01]); // 0x1003 in three bytes
  assert.deepEqual(int(0), [0]);
  assert.deepEqual(int(0x80), [0x0a, 0x80]);
  assert.deepEqual(int(0x1_0000), [0x0c, 0, 0, 1, 0]);
  assert.deepEqual(eisaId("PNP0A03"), [0x0c, 0x41, 0xd0, 0x0a, 0x03]);
  assert.deepEqual(nameString("\\_SB.PCI0"), [0x5c, 0x2e, 0x5f, 0x53, 0x42, 0x5f, 0x50, 0x43, 0x49, 0x30]);
  assert.throws(() => nameString("toolong"));
});

test("RSDP points at RSDT and XSDT; every table checksums to zero", () => {
  const { rsdp, tableAt } = linked();
  assert.equal(String.fromCharCode(...rsdp.subarray(0, 8)), "RSD PTR ");
  assert.equal(checksum(rsdp.subarray(0, 20)), 0);
  assert.equal(checksum(rsdp), 0);
  assert.equal(rsdp[15], 2);
  const rv = new DataView(rsdp.buffer);
  const rsdt = tableAt(rv.getUint32(16, true));
  const xsdt = tableAt(Number(rv.getBigUint64(24, true)));
  assert.equal(sig(rsdt), "RSDT");
  assert.equal(sig(xsdt), "XSDT");
  const entries = (rsdt.length - 36) / 4;
  const found: string[] = [];
  for (let i = 0; i < entries; i++) {
    const t = tableAt(new DataView(rsdt.buffer, rsdt.byteOffset).getUint32(36 + 4 * i, true));
    const x = tableAt(Number(new DataView(xsdt.buffer, xsdt.byteOffset).getBigUint64(36 + 8 * i, true)));
    assert.equal(t.byteOffset, x.byteOffset, "RSDT and XSDT agree");
    assert.equal(checksum(t), 0, `${sig(t)} checksum`);
    found.push(sig(t));
  }
  assert.deepEqual(found, ["FACP", "APIC", "HPET"]);
  assert.equal(checksum(rsdt), 0);
  assert.equal(checksum(xsdt), 0);
});

test("FADT blocks, reset register and the DSDT/FACS pointers", () => {
  const { rsdp, tableAt } = linked(false);
  const rsdt = tableAt(new DataView(rsdp.buffer).getUint32(16, true));
  const fadt = tableAt(new DataView(rsdt.buffer, rsdt.byteOffset).getUint32(36, true));
  const f = new DataView(fadt.buffer, fadt.byteOffset, fadt.length);
  assert.equal(sig(fadt), "FACP");
  assert.equal(fadt.length, 244);
  assert.equal(f.getUint16(46, true), 9, "SCI_INT");
  assert.equal(f.getUint32(56, true), 0x600);
  assert.equal(f.getUint32(64, true), 0x604);
  assert.equal(f.getUint32(76, true), 0x608);
  assert.equal(f.getUint32(80, true), 0xafe0);
  assert.equal(f.getUint8(116), 1, "reset register in I/O space");
  assert.equal(Number(f.getBigUint64(120, true)), 0xcf9);
  assert.equal(f.getUint8(128), 0x06);
  assert.equal(f.getUint32(112, true) & 0x25, 0x25, "WBINVD, PROC_C1, SLP_BUTTON");
  const facs = tableAt(f.getUint32(36, true));
  assert.equal(sig(facs), "FACS");
  assert.equal((f.getUint32(36, true) - TABLES_AT) % 64, 0, "FACS is 64-byte aligned");
  const dsdt = tableAt(f.getUint32(40, true));
  assert.equal(sig(dsdt), "DSDT");
  assert.equal(Number(f.getBigUint64(140, true)), f.getUint32(40, true));
  assert.equal(checksum(dsdt), 0);
});

test("MADT: local APIC, IOAPIC, overrides and LINT1 NMI", () => {
  const { rsdp, tableAt } = linked(false);
  const rsdt = tableAt(new DataView(rsdp.buffer).getUint32(16, true));
  const madt = tableAt(new DataView(rsdt.buffer, rsdt.byteOffset).getUint32(40, true));
  const m = new DataView(madt.buffer, madt.byteOffset, madt.length);
  assert.equal(sig(madt), "APIC");
  assert.equal(m.getUint32(36, true), 0xfee0_0000);
  const entries: number[][] = [];
  for (let at = 44; at < madt.length; at += madt[at + 1]!)
    entries.push([...madt.subarray(at, at + madt[at + 1]!)]);
  assert.deepEqual(entries[0], [0, 8, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(entries[1], [1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
  assert.deepEqual(entries[2], [2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
  assert.ok(entries.some((e) => e[0] === 2 && e[3] === 9 && e[8] === 0x0d));
  assert.deepEqual(entries.at(-1), [4, 6, 0xff, 0, 0, 1]);
});

test("DSDT disassembles cleanly with iasl", (t) => {
  try {
    execFileSync("iasl", ["-v"], { stdio: "ignore" });
  } catch {
    t.skip("iasl (acpica-tools) is not installed");
    return;
  }
  const { blobs } = linked();
  const dsdtOffset = blobs.offsets.DSDT!;
  const length = new DataView(blobs.tables.buffer).getUint32(dsdtOffset + 4, true);
  const dsdt = blobs.tables.slice(dsdtOffset, dsdtOffset + length);
  dsdt[9] = (dsdt[9]! - checksum(dsdt)) & 0xff;
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-dsdt-"));
  try {
    writeFileSync(join(dir, "dsdt.aml"), dsdt);
    execFileSync("iasl", ["-d", "dsdt.aml"], { cwd: dir, stdio: "pipe" });
    const asl = readFileSync(join(dir, "dsdt.dsl"), "latin1");
    for (const expected of [
      "Device (PCI0)",
      'EisaId ("PNP0A03")',
      "Name (_PRT, Package (0x80)",
      "OperationRegion (P40C, PCI_Config, 0x60, 0x04)",
      'EisaId ("PNP0C0F")',
      "Method (_SRS, 1, NotSerialized)",
      'EisaId ("PNP0B00")',
      'EisaId ("PNP0303")',
      'EisaId ("PNP0F13")',
      'EisaId ("PNP0501")',
      'EisaId ("PNP0103")',
      "Name (\\_S5, Package (0x04)",
    ]) {
      assert.ok(asl.includes(expected), `disassembly lacks ${expected}`);
    }
    // Recompiling the disassembly must succeed too: the AML is well-formed.
    const report = execFileSync("iasl", ["-p", "re", "dsdt.dsl"], { cwd: dir, stdio: "pipe" }).toString();
    assert.match(report, /0 Errors, 0 Warnings/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("publishAcpiTables adds the three fw_cfg files", () => {
  const { blobs } = linked();
  const files = new Map<string, Uint8Array>();
  const addFile = (n: string, d: Uint8Array) => {
    files.set(n, d);
    return files.size;
  };
  publishAcpiTables({ addFile }, blobs);
  assert.deepEqual([...files.keys()], ["etc/acpi/tables", "etc/acpi/rsdp", "etc/table-loader"]);
  assert.equal(files.get("etc/table-loader")!.length % 128, 0);
  assert.equal(new DataView(files.get("etc/table-loader")!.buffer).getUint32(0, true), 1, "ALLOCATE first");
});

/**
 * Walks a DSDT the way a minimal firmware parser does (only scopes, devices, names, methods,
 * regions and fields at the top of each scope), returning each device's _HID bytes and whether it
 * has a _STA. Throws on anything else, so the DSDT stays within what such parsers accept.
 */
function walkDevices(aml: Uint8Array): Map<string, { hid: number[]; hasSta: boolean }> {
  const devices = new Map<string, { hid: number[]; hasSta: boolean }>();
  const pkgLen = (at: number): [number, number] => {
    const lead = aml[at]!;
    const extra = lead >> 6;
    if (extra === 0) return [lead & 0x3f, 1];
    let len = lead & 0x0f;
    for (let i = 0; i < extra; i++) len |= aml[at + 1 + i]! << (4 + 8 * i);
    return [len, 1 + extra];
  };
  const nameLen = (at: number): number => {
    let i = at;
    while (aml[i] === 0x5c || aml[i] === 0x5e) i++;
    if (aml[i] === 0x2e) return i - at + 9;
    if (aml[i] === 0x2f) return i - at + 2 + 4 * aml[i + 1]!;
    if (aml[i] === 0) return i - at + 1;
    return i - at + 4;
  };
  const seg = (at: number) => String.fromCharCode(...aml.subarray(at, at + 4));
  const dataLen = (at: number): number => {
    const op = aml[at]!;
    if (op === 0 || op === 1 || op === 0xff) return 1;
    if (op === 0x0a) return 2;
    if (op === 0x0b) return 3;
    if (op === 0x0c) return 5;
    if (op === 0x0d) return aml.indexOf(0, at + 1) - at + 1;
    if (op === 0x11 || op === 0x12) return 1 + pkgLen(at + 1)[0];
    throw new Error(`unexpected data opcode 0x${op.toString(16)} at ${at}`);
  };
  const termList = (start: number, end: number, device: string | undefined): void => {
    let at = start;
    while (at < end) {
      const op = aml[at]!;
      if (op === 0x08) {
        const n = nameLen(at + 1);
        const name = seg(at + 1 + n - 4);
        const valueAt = at + 1 + n;
        if (device && name === "_HID") devices.get(device)!.hid = [...aml.subarray(valueAt, valueAt + 5)];
        if (device && name === "_STA") devices.get(device)!.hasSta = true;
        at = valueAt + dataLen(valueAt);
      } else if (op === 0x10 || op === 0x14) {
        const [len, lenBytes] = pkgLen(at + 1);
        const nameAt = at + 1 + lenBytes;
        if (op === 0x10) termList(nameAt + nameLen(nameAt), at + 1 + len, undefined);
        else if (device && seg(nameAt + nameLen(nameAt) - 4) === "_STA") devices.get(device)!.hasSta = true;
        at += 1 + len;
      } else if (op === 0x5b && aml[at + 1] === 0x82) {
        const [len, lenBytes] = pkgLen(at + 2);
        const nameAt = at + 2 + lenBytes;
        const n = nameLen(nameAt);
        const name = seg(nameAt + n - 4);
        devices.set(name, { hid: [], hasSta: false });
        termList(nameAt + n, at + 2 + len, name);
        at += 2 + len;
      } else if (op === 0x5b && aml[at + 1] === 0x80) {
        const regionAt = at + 2 + nameLen(at + 2) + 1;
        const lengthAt = regionAt + dataLen(regionAt);
        at = lengthAt + dataLen(lengthAt);
      } else if (op === 0x5b && aml[at + 1] === 0x81) {
        at += 2 + pkgLen(at + 2)[0];
      } else {
        throw new Error(`unexpected opcode 0x${op.toString(16)} at ${at}`);
      }
    }
    if (at !== end) throw new Error(`term list overran its package: ${at} vs ${end}`);
  };
  termList(36, aml.length, undefined);
  return devices;
}

test("serial ports are declared as configured", () => {
  const blobs = buildAcpiTables({
    ramBelow4g: 64 << 20,
    serialPorts: [
      { base: 0x3f8, irq: 4 },
      { base: 0x2f8, irq: 3 },
    ],
  });
  const at = blobs.offsets.DSDT!;
  const dsdt = blobs.tables.subarray(at, at + new DataView(blobs.tables.buffer).getUint32(at + 4, true));
  const devices = walkDevices(dsdt);
  assert.deepEqual(devices.get("COM2")?.hid, eisaId("PNP0501"));
  assert.equal(devices.has("COM3"), false);
  assert.equal(devices.has("HPET"), false);
});

test("a minimal firmware DSDT walk finds the ISA devices as present", () => {
  const { blobs } = linked();
  const at = blobs.offsets.DSDT!;
  const dsdt = blobs.tables.subarray(at, at + new DataView(blobs.tables.buffer).getUint32(at + 4, true));
  const devices = walkDevices(dsdt);
  const pnp = (id: string) => eisaId(id);
  assert.deepEqual(devices.get("KBD_"), { hid: pnp("PNP0303"), hasSta: false });
  assert.deepEqual(devices.get("MOU_"), { hid: pnp("PNP0F13"), hasSta: false });
  assert.deepEqual(devices.get("COM1"), { hid: pnp("PNP0501"), hasSta: false });
  assert.deepEqual(devices.get("RTC_")?.hid, pnp("PNP0B00"));
  assert.deepEqual(devices.get("PCI0")?.hid, pnp("PNP0A03"));
  assert.deepEqual(devices.get("HPET")?.hid, pnp("PNP0103"));
  assert.equal(devices.get("LNKA")?.hasSta, true);
});
