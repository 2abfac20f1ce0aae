// ACPI tables for the PC (i440FX + PIIX3/PIIX4, one CPU with a local APIC, an IOAPIC, optionally
// an HPET), and their delivery through fw_cfg the way QEMU does it: the tables as one blob
// (`etc/acpi/tables`), the RSDP as another (`etc/acpi/rsdp`), and a command file
// (`etc/table-loader`) that tells the firmware where to place the blobs, which pointers to patch
// once it knows their addresses, and which checksums to fix afterwards.
//
// `linkAcpiTables` runs the same commands on the host, for boot paths without SeaBIOS and tests.

import {
  type Aml,
  and,
  arg,
  createDWordField,
  device,
  dwordMemory,
  eisaId,
  extendedInterrupt,
  FIELD_BYTE_ACC,
  FIELD_PRESERVE,
  field,
  ifThen,
  int,
  ioPort,
  irqDescriptor,
  lLess,
  memory32Fixed,
  method,
  name,
  nameString,
  operationRegion,
  or,
  pkg,
  REGION_PCI_CONFIG,
  ref,
  resourceTemplate,
  returnValue,
  scope,
  store,
  wordBusNumber,
  wordIo,
} from "./aml.ts";

export interface AcpiConfig {
  /** RAM below 4 GiB in bytes; the PCI memory window starts above it. */
  readonly ramBelow4g: number;
  /** PM I/O block base (SeaBIOS programs 0x600). */
  readonly pmBase?: number;
  /** GPE0 block base (QEMU: 0xAFE0). */
  readonly gpe0Base?: number;
  readonly sciIrq?: number;
  /** APM control port (the FADT's SMI_CMD). */
  readonly smiCommandPort?: number;
  readonly localApicAddress?: number;
  readonly ioapicAddress?: number;
  readonly ioapicId?: number;
  /** HPET MMIO base when the board has one. */
  readonly hpetAddress?: number;
  /** 16550 UARTs to declare (default: COM1 at 0x3F8, IRQ 4). */
  readonly serialPorts?: readonly { readonly base: number; readonly irq: number }[];
}

/** fw_cfg file names the firmware looks for. */
export const ACPI_TABLES_FILE = "etc/acpi/tables";
export const ACPI_RSDP_FILE = "etc/acpi/rsdp";
export const TABLE_LOADER_FILE = "etc/table-loader";

/** table-loader command: allocate and fill a blob. */
const LOADER_ALLOCATE = 1;
/** table-loader command: add a blob's address to a pointer in another blob. */
const LOADER_ADD_POINTER = 2;
/** table-loader command: fix a checksum byte so that a range sums to zero. */
const LOADER_ADD_CHECKSUM = 3;
/** ALLOCATE zone: anywhere in high memory. */
export const LOADER_ZONE_HIGH = 1;
/** ALLOCATE zone: the 0xF0000 segment (the RSDP must be found there by scanning). */
export const LOADER_ZONE_FSEG = 2;
const LOADER_ENTRY_SIZE = 128;
const LOADER_FILE_NAME_SIZE = 56;

const OEM_ID = "TSVISR";
const OEM_TABLE_ID = "TSVISOR ";
const CREATOR_ID = "TSVR";
const HEADER_SIZE = 36;

// FADT flags.
/** WBINVD works. */
const FADT_WBINVD = 1 << 0;
/** C1 (HLT) is supported. */
const FADT_PROC_C1 = 1 << 2;
/** No fixed-feature sleep button (the power button is a fixed feature: bit 4 stays clear). */
const FADT_SLP_BUTTON = 1 << 5;
/** The RTC can wake from S4. */
const FADT_RTC_S4 = 1 << 7;
/** The RESET_REG field is valid. */
const FADT_RESET_REG_SUP = 1 << 10;
/** IA-PC boot architecture: legacy devices present. */
const BOOT_ARCH_LEGACY_DEVICES = 1 << 0;
/** IA-PC boot architecture: an 8042 keyboard controller is present. */
const BOOT_ARCH_8042 = 1 << 1;

// MADT.
/** MADT flags bit 0 (PCAT_COMPAT): the board also has dual 8259s. */
const MADT_PCAT_COMPAT = 1;
/** MPS INTI flags: polarity active high (bits 1:0 = 01), trigger level (bits 3:2 = 11). */
const MPS_ACTIVE_HIGH_LEVEL = 0x000d;

export interface AcpiBlobs {
  /** Contents of `etc/acpi/tables` (pointers hold offsets within it, checksums are zero). */
  readonly tables: Uint8Array;
  /** Contents of `etc/acpi/rsdp`. */
  readonly rsdp: Uint8Array;
  /** Contents of `etc/table-loader`. */
  readonly loader: Uint8Array;
  /** Offset of each table in `tables`, by signature. */
  readonly offsets: Readonly<Record<string, number>>;
}

interface PointerFixup {
  readonly destFile: string;
  readonly srcFile: string;
  readonly offset: number;
  readonly size: 4 | 8;
}

interface ChecksumFixup {
  readonly file: string;
  readonly offset: number;
  readonly start: number;
  readonly length: number;
}

/** Builds the tables, the RSDP and the loader script for a board. */
export function buildAcpiTables(config: AcpiConfig): AcpiBlobs {
  const pmBase = config.pmBase ?? 0x600;
  const gpe0Base = config.gpe0Base ?? 0xafe0;
  const sciIrq = config.sciIrq ?? 9;
  const smiCommand = config.smiCommandPort ?? 0xb2;
  const localApic = config.localApicAddress ?? 0xfee0_0000;
  const ioapicAddress = config.ioapicAddress ?? 0xfec0_0000;
  const ioapicId = config.ioapicId ?? 0;

  const blob = new Blob();
  const pointers: PointerFixup[] = [];
  const checksums: ChecksumFixup[] = [];
  const offsets: Record<string, number> = {};
  const addTable = (bytes: Uint8Array, align = 1): number => {
    const at = blob.append(bytes, align);
    offsets[String.fromCharCode(...bytes.subarray(0, 4))] = at;
    if (bytes.length >= HEADER_SIZE && String.fromCharCode(...bytes.subarray(0, 4)) !== "FACS") {
      checksums.push({ file: ACPI_TABLES_FILE, offset: at + 9, start: at, length: bytes.length });
    }
    return at;
  };
  const pointTo = (tableAt: number, fieldOffset: number, size: 4 | 8, target: number): void => {
    blob.write(tableAt + fieldOffset, size, target);
    pointers.push({
      destFile: ACPI_TABLES_FILE,
      srcFile: ACPI_TABLES_FILE,
      offset: tableAt + fieldOffset,
      size,
    });
  };

  // FACS first: it has to be 64-byte aligned and the blob is allocated 64-byte aligned.
  const facs = new Uint8Array(64);
  facs.set(ascii("FACS"), 0);
  putLe(facs, 4, 4, 64);
  facs[32] = 1; // version
  const facsAt = addTable(facs, 64);

  const dsdtAt = addTable(withHeader("DSDT", 1, new Uint8Array(buildDsdt(config))));

  const fadt = buildFadt({ pmBase, gpe0Base, sciIrq, smiCommand });
  const fadtAt = addTable(fadt);
  pointTo(fadtAt, 36, 4, facsAt);
  pointTo(fadtAt, 40, 4, dsdtAt);
  pointTo(fadtAt, 140, 8, dsdtAt);

  const madtAt = addTable(buildMadt(localApic, ioapicAddress, ioapicId));
  const others = [fadtAt, madtAt];
  if (config.hpetAddress !== undefined) others.push(addTable(buildHpetTable(config.hpetAddress)));

  const rsdtBody = new Uint8Array(4 * others.length);
  const rsdtAt = addTable(withHeader("RSDT", 1, rsdtBody));
  others.forEach((t, i) => {
    pointTo(rsdtAt, HEADER_SIZE + 4 * i, 4, t);
  });
  const xsdtAt = addTable(withHeader("XSDT", 1, new Uint8Array(8 * others.length)));
  others.forEach((t, i) => {
    pointTo(xsdtAt, HEADER_SIZE + 8 * i, 8, t);
  });

  // RSDP, revision 2: the checksum covers the first 20 bytes, the extended one all 36.
  const rsdp = new Uint8Array(36);
  rsdp.set(ascii("RSD PTR "), 0);
  rsdp.set(ascii(OEM_ID), 9);
  rsdp[15] = 2;
  putLe(rsdp, 16, 4, rsdtAt);
  putLe(rsdp, 20, 4, 36);
  putLe(rsdp, 24, 8, xsdtAt);
  pointers.push({ destFile: ACPI_RSDP_FILE, srcFile: ACPI_TABLES_FILE, offset: 16, size: 4 });
  pointers.push({ destFile: ACPI_RSDP_FILE, srcFile: ACPI_TABLES_FILE, offset: 24, size: 8 });
  checksums.push({ file: ACPI_RSDP_FILE, offset: 8, start: 0, length: 20 });
  checksums.push({ file: ACPI_RSDP_FILE, offset: 32, start: 0, length: 36 });

  const loader = new Uint8Array(LOADER_ENTRY_SIZE * (2 + pointers.length + checksums.length));
  let entry = 0;
  const next = () => loader.subarray(LOADER_ENTRY_SIZE * entry, LOADER_ENTRY_SIZE * ++entry);
  for (const [file, align, zone] of [
    [ACPI_RSDP_FILE, 16, LOADER_ZONE_FSEG],
    [ACPI_TABLES_FILE, 64, LOADER_ZONE_HIGH],
  ] as const) {
    const e = next();
    putLe(e, 0, 4, LOADER_ALLOCATE);
    putName(e, 4, file);
    putLe(e, 4 + LOADER_FILE_NAME_SIZE, 4, align);
    e[8 + LOADER_FILE_NAME_SIZE] = zone;
  }
  for (const p of pointers) {
    const e = next();
    putLe(e, 0, 4, LOADER_ADD_POINTER);
    putName(e, 4, p.destFile);
    putName(e, 4 + LOADER_FILE_NAME_SIZE, p.srcFile);
    putLe(e, 4 + 2 * LOADER_FILE_NAME_SIZE, 4, p.offset);
    e[8 + 2 * LOADER_FILE_NAME_SIZE] = p.size;
  }
  for (const c of checksums) {
    const e = next();
    putLe(e, 0, 4, LOADER_ADD_CHECKSUM);
    putName(e, 4, c.file);
    putLe(e, 4 + LOADER_FILE_NAME_SIZE, 4, c.offset);
    putLe(e, 8 + LOADER_FILE_NAME_SIZE, 4, c.start);
    putLe(e, 12 + LOADER_FILE_NAME_SIZE, 4, c.length);
  }
  return { tables: blob.bytes(), rsdp, loader, offsets };
}

/** Publishes the blobs as the fw_cfg files SeaBIOS's ACPI loader reads (FwCfg satisfies `fwCfg`). */
export function publishAcpiTables(
  fwCfg: { addFile(name: string, data: Uint8Array): number },
  blobs: AcpiBlobs,
): void {
  fwCfg.addFile(ACPI_TABLES_FILE, blobs.tables);
  fwCfg.addFile(ACPI_RSDP_FILE, blobs.rsdp);
  fwCfg.addFile(TABLE_LOADER_FILE, blobs.loader);
}

/**
 * Runs a table-loader script on the host: `files` are the blobs by name, `placeAt` chooses the
 * guest address of each ALLOCATE (given name, size, alignment and zone). Returns the patched
 * blobs and where they go; the caller copies them into guest memory.
 */
export function linkAcpiTables(
  loader: Uint8Array,
  files: Readonly<Record<string, Uint8Array>>,
  placeAt: (name: string, size: number, align: number, zone: number) => number,
): Map<string, { address: number; bytes: Uint8Array }> {
  const placed = new Map<string, { address: number; bytes: Uint8Array }>();
  const blob = (fileName: string) => {
    const p = placed.get(fileName);
    if (!p) throw new Error(`table-loader: '${fileName}' is used before it is allocated`);
    return p;
  };
  if (loader.length % LOADER_ENTRY_SIZE !== 0) throw new Error("table-loader: not a whole number of entries");
  for (let at = 0; at < loader.length; at += LOADER_ENTRY_SIZE) {
    const e = loader.subarray(at, at + LOADER_ENTRY_SIZE);
    const command = getLe(e, 0, 4);
    if (command === LOADER_ALLOCATE) {
      const fileName = getName(e, 4);
      const data = files[fileName];
      if (!data) throw new Error(`table-loader: no file '${fileName}'`);
      const align = getLe(e, 4 + LOADER_FILE_NAME_SIZE, 4);
      const address = placeAt(fileName, data.length, align, e[8 + LOADER_FILE_NAME_SIZE]!);
      placed.set(fileName, { address, bytes: data.slice() });
    } else if (command === LOADER_ADD_POINTER) {
      const dest = blob(getName(e, 4));
      const src = blob(getName(e, 4 + LOADER_FILE_NAME_SIZE));
      const offset = getLe(e, 4 + 2 * LOADER_FILE_NAME_SIZE, 4);
      const size = e[8 + 2 * LOADER_FILE_NAME_SIZE]!;
      if (![1, 2, 4, 8].includes(size) || offset + size > dest.bytes.length) {
        throw new Error(`table-loader: bad pointer at ${offset} size ${size}`);
      }
      const value = getLe(dest.bytes, offset, size) + src.address;
      putLe(dest.bytes, offset, size, value);
    } else if (command === LOADER_ADD_CHECKSUM) {
      const target = blob(getName(e, 4));
      const offset = getLe(e, 4 + LOADER_FILE_NAME_SIZE, 4);
      const start = getLe(e, 8 + LOADER_FILE_NAME_SIZE, 4);
      const length = getLe(e, 12 + LOADER_FILE_NAME_SIZE, 4);
      if (offset >= target.bytes.length || start + length > target.bytes.length) {
        throw new Error("table-loader: checksum range outside its file");
      }
      target.bytes[offset] =
        (target.bytes[offset]! - checksum(target.bytes.subarray(start, start + length))) & 0xff;
    }
  }
  return placed;
}

/** Sum of bytes modulo 256 (zero for a valid ACPI table). */
export function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return sum;
}

// ---- individual tables ------------------------------------------------------------------

function buildFadt(p: { pmBase: number; gpe0Base: number; sciIrq: number; smiCommand: number }): Uint8Array {
  const f = new Uint8Array(244 - HEADER_SIZE);
  const at = (offset: number) => offset - HEADER_SIZE;
  putLe(f, at(46), 2, p.sciIrq);
  putLe(f, at(48), 4, p.smiCommand);
  f[at(52)] = 0xf1; // ACPI_ENABLE, as the APM port understands it
  f[at(53)] = 0xf0; // ACPI_DISABLE
  putLe(f, at(56), 4, p.pmBase); // PM1a_EVT_BLK
  putLe(f, at(64), 4, p.pmBase + 4); // PM1a_CNT_BLK
  putLe(f, at(76), 4, p.pmBase + 8); // PM_TMR_BLK
  putLe(f, at(80), 4, p.gpe0Base); // GPE0_BLK
  f[at(88)] = 4; // PM1_EVT_LEN
  f[at(89)] = 2; // PM1_CNT_LEN
  f[at(91)] = 4; // PM_TMR_LEN
  f[at(92)] = 4; // GPE0_BLK_LEN
  putLe(f, at(96), 2, 0x0fff); // P_LVL2_LAT: C2 not supported
  putLe(f, at(98), 2, 0x0fff); // P_LVL3_LAT: C3 not supported
  f[at(108)] = 0x32; // CENTURY: CMOS register of the century
  putLe(f, at(109), 2, BOOT_ARCH_LEGACY_DEVICES | BOOT_ARCH_8042);
  putLe(f, at(112), 4, FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_RTC_S4 | FADT_RESET_REG_SUP);
  f.set(gas(1, 8, 1, 0xcf9), at(116)); // RESET_REG: the PIIX3's reset control register
  f[at(128)] = 0x06; // RESET_VALUE: system reset + reset CPU
  f.set(gas(1, 32, 0, p.pmBase), at(148)); // X_PM1a_EVT_BLK
  f.set(gas(1, 16, 0, p.pmBase + 4), at(172)); // X_PM1a_CNT_BLK
  f.set(gas(1, 32, 0, p.pmBase + 8), at(208)); // X_PM_TMR_BLK
  f.set(gas(1, 32, 0, p.gpe0Base), at(220)); // X_GPE0_BLK
  return withHeader("FACP", 3, f);
}

function buildMadt(localApic: number, ioapicAddress: number, ioapicId: number): Uint8Array {
  const body: number[] = [...le(localApic, 4), ...le(MADT_PCAT_COMPAT, 4)];
  // Processor local APIC: ACPI processor id 0, APIC id 0, enabled.
  body.push(0, 8, 0, 0, ...le(1, 4));
  // I/O APIC: id, reserved, address, GSI base 0.
  body.push(1, 12, ioapicId, 0, ...le(ioapicAddress, 4), ...le(0, 4));
  // Interrupt source overrides, as QEMU's pc: the PIT's IRQ 0 is pin 2, the PCI-routable IRQs
  // (5, 9 = SCI, 10, 11) are level-triggered, active high.
  body.push(2, 10, 0, 0, ...le(2, 4), ...le(0, 2));
  for (const irq of [5, 9, 10, 11]) body.push(2, 10, 0, irq, ...le(irq, 4), ...le(MPS_ACTIVE_HIGH_LEVEL, 2));
  // Local APIC NMI: all processors, default flags, LINT1.
  body.push(4, 6, 0xff, ...le(0, 2), 1);
  return withHeader("APIC", 1, Uint8Array.from(body));
}

function buildHpetTable(address: number): Uint8Array {
  const body = new Uint8Array(56 - HEADER_SIZE);
  // Event timer block id: vendor 8086, legacy replacement capable, 64-bit counter, 3 comparators, rev 1.
  putLe(body, 0, 4, (0x8086 << 16) | (1 << 15) | (1 << 13) | (2 << 8) | 1);
  body.set(gas(0, 64, 0, address), 4);
  body[16] = 0; // HPET number
  putLe(body, 17, 2, 0x80); // minimum clock tick in periodic mode
  return withHeader("HPET", 1, body);
}

function buildDsdt(config: AcpiConfig): Aml {
  const pciWindowStart = Math.max(config.ramBelow4g, 0x0800_0000);
  const links = ["LNKA", "LNKB", "LNKC", "LNKD"];
  const pirqFields = ["PRQ0", "PRQ1", "PRQ2", "PRQ3"];

  // _PRT: each slot's INTA-D to the link devices, rotating as the PIIX3's PIRQ wiring does;
  // slot 1 INTA (the PIIX4's SCI pin) goes to LNKS, which is fixed at IRQ 9.
  const prt: Aml[] = [];
  for (let slot = 0; slot < 32; slot++) {
    for (let pin = 0; pin < 4; pin++) {
      const link = slot === 1 && pin === 0 ? "LNKS" : links[(slot + pin - 1) & 3]!;
      prt.push(pkg(int(((slot << 16) | 0xffff) >>> 0), int(pin), nameString(link), int(0)));
    }
  }
  // A package holds at most 255 elements; the 128 entries fit.

  const linkDevice = (link: string, uid: number, pirq: string): Aml =>
    device(
      link,
      name("_HID", eisaId("PNP0C0F")),
      name("_UID", int(uid)),
      name(
        "_PRS",
        resourceTemplate(extendedInterrupt([5, 10, 11], { level: true, activeLow: false, shared: true })),
      ),
      method("_STA", 0, false, returnValue(callMethod("IQST", ref(pirq)))),
      method("_DIS", 0, false, or(ref(pirq), int(0x80), ref(pirq))),
      method("_CRS", 0, false, returnValue(callMethod("IQCR", ref(pirq)))),
      method("_SRS", 1, false, createDWordField(arg(0), 5, "PRRI"), store(ref("PRRI"), ref(pirq))),
    );

  // No _STA on these: a device without one is present, which firmware DSDT parsers (SeaBIOS's,
  // deciding whether to probe the PS/2 controller) can tell without evaluating a method.
  const isaDevices: Aml[] = [
    device(
      "RTC",
      name("_HID", eisaId("PNP0B00")),
      name("_CRS", resourceTemplate(ioPort(0x70, 0x70, 0x10, 0x02), irqDescriptor([8]))),
    ),
    device(
      "KBD",
      name("_HID", eisaId("PNP0303")),
      name(
        "_CRS",
        resourceTemplate(ioPort(0x60, 0x60, 0x01, 0x01), ioPort(0x64, 0x64, 0x01, 0x01), irqDescriptor([1])),
      ),
    ),
    device("MOU", name("_HID", eisaId("PNP0F13")), name("_CRS", resourceTemplate(irqDescriptor([12])))),
    ...(config.serialPorts ?? [{ base: 0x3f8, irq: 4 }]).map((port, n) =>
      device(
        `COM${n + 1}`,
        name("_HID", eisaId("PNP0501")),
        name("_UID", int(n + 1)),
        name("_CRS", resourceTemplate(ioPort(port.base, port.base, 0x00, 0x08), irqDescriptor([port.irq]))),
      ),
    ),
  ];

  const pci0 = device(
    "PCI0",
    name("_HID", eisaId("PNP0A03")),
    name("_UID", int(0)),
    name(
      "_CRS",
      resourceTemplate(
        wordBusNumber(0x00, 0xff),
        ioPort(0xcf8, 0xcf8, 0x01, 0x08),
        wordIo(0x0000, 0x0cf7),
        wordIo(0x0d00, 0xffff),
        dwordMemory(0x000a_0000, 0x000b_ffff, true),
        dwordMemory(pciWindowStart, 0xfebf_ffff, false),
      ),
    ),
    name("_PRT", pkg(...prt)),
    device(
      "ISA",
      name("_ADR", int(0x0001_0000)),
      operationRegion("P40C", REGION_PCI_CONFIG, int(0x60), int(0x04)),
      ...isaDevices,
    ),
  );

  const sb: Aml[] = [
    pci0,
    field(
      "PCI0.ISA.P40C",
      FIELD_BYTE_ACC | FIELD_PRESERVE,
      pirqFields.map((f) => [f, 8] as const),
    ),
    // IQST(route): a link whose PIRQ route has bit 7 set is disabled (present, not enabled).
    method("IQST", 1, false, ifThen(and(int(0x80), arg(0)), returnValue(int(0x09))), returnValue(int(0x0b))),
    // IQCR(route): the current setting as a resource template.
    method(
      "IQCR",
      1,
      true,
      name("PRR0", resourceTemplate(extendedInterrupt([0], { level: true, activeLow: false, shared: true }))),
      createDWordField(ref("PRR0"), 5, "PRRI"),
      ifThen(lLess(arg(0), int(0x80)), store(arg(0), ref("PRRI"))),
      returnValue(ref("PRR0")),
    ),
    ...links.map((l, i) => linkDevice(l, i, pirqFields[i]!)),
    device(
      "LNKS",
      name("_HID", eisaId("PNP0C0F")),
      name("_UID", int(4)),
      name("_STA", int(0x0b)),
      name("_PRS", resourceTemplate(extendedInterrupt([9], { level: true, activeLow: false, shared: true }))),
      method("_SRS", 1, false),
      method("_DIS", 0, false),
      name("_CRS", resourceTemplate(extendedInterrupt([9], { level: true, activeLow: false, shared: true }))),
    ),
  ];
  if (config.hpetAddress !== undefined) {
    sb.push(
      device(
        "HPET",
        name("_HID", eisaId("PNP0103")),
        name("_UID", int(0)),
        name("_CRS", resourceTemplate(memory32Fixed(config.hpetAddress, 0x400, false))),
      ),
    );
  }

  return [
    ...scope("\\_SB", ...sb),
    // S5 (soft off): SLP_TYP 0 for PM1a and PM1b, as QEMU's PIIX4 decodes it.
    ...name("\\_S5", pkg(int(0), int(0), int(0), int(0))),
  ];
}

/** A method invocation: the name followed by its arguments. */
function callMethod(methodName: string, ...args: Aml[]): Aml {
  return [...nameString(methodName), ...args.flat()];
}

// ---- helpers ----------------------------------------------------------------------------

/** Prefixes `body` with a standard table header (checksum left zero for the loader). */
function withHeader(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const table = new Uint8Array(HEADER_SIZE + body.length);
  table.set(ascii(signature), 0);
  putLe(table, 4, 4, table.length);
  table[8] = revision;
  table.set(ascii(OEM_ID), 10);
  table.set(ascii(OEM_TABLE_ID), 16);
  putLe(table, 24, 4, 1);
  table.set(ascii(CREATOR_ID), 28);
  putLe(table, 32, 4, 1);
  table.set(body, HEADER_SIZE);
  return table;
}

/** A Generic Address Structure: space (0 memory, 1 I/O), bit width, access size, address. */
function gas(space: number, bitWidth: number, accessSize: number, address: number): Uint8Array {
  const g = new Uint8Array(12);
  g[0] = space;
  g[1] = bitWidth;
  g[2] = 0;
  g[3] = accessSize;
  putLe(g, 4, 8, address);
  return g;
}

class Blob {
  private data = new Uint8Array(4096);
  private length = 0;

  append(bytes: Uint8Array, align: number): number {
    const at = Math.ceil(this.length / align) * align;
    this.reserve(at + bytes.length);
    this.data.set(bytes, at);
    this.length = at + bytes.length;
    return at;
  }

  write(offset: number, size: number, value: number): void {
    putLe(this.data, offset, size, value);
  }

  bytes(): Uint8Array {
    return this.data.slice(0, this.length);
  }

  private reserve(size: number): void {
    if (size <= this.data.length) return;
    const bigger = new Uint8Array(Math.max(size, this.data.length * 2));
    bigger.set(this.data);
    this.data = bigger;
  }
}

function ascii(text: string): Uint8Array {
  return Uint8Array.from([...text].map((c) => c.charCodeAt(0)));
}

function le(value: number, size: number): number[] {
  const out = new Uint8Array(size);
  putLe(out, 0, size, value);
  return [...out];
}

function putLe(bytes: Uint8Array, offset: number, size: number, value: number): void {
  let v = BigInt(Math.trunc(value));
  for (let i = 0; i < size; i++) {
    bytes[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function getLe(bytes: Uint8Array, offset: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + bytes[offset + i]!;
  return v;
}

function putName(entry: Uint8Array, offset: number, fileName: string): void {
  if (fileName.length >= LOADER_FILE_NAME_SIZE)
    throw new RangeError(`loader file name '${fileName}' is too long`);
  entry.set(ascii(fileName), offset);
}

function getName(entry: Uint8Array, offset: number): string {
  const raw = entry.subarray(offset, offset + LOADER_FILE_NAME_SIZE);
  const end = raw.indexOf(0);
  return String.fromCharCode(...raw.subarray(0, end < 0 ? raw.length : end));
}
