// A small encoder for ACPI Machine Language (ACPI spec, chapter 20) and resource descriptors
// (chapter 6.4): enough to write a PC's DSDT. Every function returns the encoded bytes of one
// term, so a table reads like the ASL it stands for:
//
//   scope("\\_SB_", device("PCI0", name("_HID", eisaId("PNP0A03")), ...))

/** Encoded AML: an array of bytes. */
export type Aml = number[];

const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const ALIAS_OP = 0x06;
const NAME_OP = 0x08;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const SCOPE_OP = 0x10;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const METHOD_OP = 0x14;
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;
const EXT_OP_PREFIX = 0x5b;
const ROOT_CHAR = 0x5c;
const PARENT_PREFIX_CHAR = 0x5e;
const LOCAL0_OP = 0x60;
const ARG0_OP = 0x68;
const STORE_OP = 0x70;
const ADD_OP = 0x72;
const SUBTRACT_OP = 0x74;
const SHIFT_LEFT_OP = 0x79;
const SHIFT_RIGHT_OP = 0x7a;
const AND_OP = 0x7b;
const OR_OP = 0x7d;
const NOTIFY_OP = 0x86;
const CREATE_DWORD_FIELD_OP = 0x8a;
const CREATE_WORD_FIELD_OP = 0x8b;
const CREATE_BYTE_FIELD_OP = 0x8c;
const LAND_OP = 0x90;
const LNOT_OP = 0x92;
const LEQUAL_OP = 0x93;
const LGREATER_OP = 0x94;
const LLESS_OP = 0x95;
const IF_OP = 0xa0;
const ELSE_OP = 0xa1;
const RETURN_OP = 0xa4;
const ONES_OP = 0xff;
/** ExtOp second bytes. */
const OP_REGION_OP = 0x80;
const FIELD_OP = 0x81;
const DEVICE_OP = 0x82;
/** A null Target ("store the result nowhere"). */
const NULL_NAME = 0x00;

// ---- encoding primitives ----------------------------------------------------------------

/**
 * PkgLength: the length of what follows *including* the PkgLength bytes themselves, in 1-4
 * bytes (the lead byte's bits 7:6 count the extra bytes).
 */
export function pkgLength(bodyLength: number): Aml {
  if (bodyLength + 1 < 0x40) return [bodyLength + 1];
  for (let extra = 1; extra <= 3; extra++) {
    const total = bodyLength + 1 + extra;
    if (total < 1 << (4 + 8 * extra)) {
      const out = [(extra << 6) | (total & 0x0f)];
      for (let i = 0; i < extra; i++) out.push((total >> (4 + 8 * i)) & 0xff);
      return out;
    }
  }
  throw new RangeError(`AML package of ${bodyLength} bytes is too long`);
}

/** A field's bit length uses the PkgLength encoding without counting itself. */
function fieldLength(bits: number): Aml {
  if (bits < 0x40) return [bits];
  for (let extra = 1; extra <= 3; extra++) {
    if (bits < 1 << (4 + 8 * extra)) {
      const out = [(extra << 6) | (bits & 0x0f)];
      for (let i = 0; i < extra; i++) out.push((bits >> (4 + 8 * i)) & 0xff);
      return out;
    }
  }
  throw new RangeError(`field of ${bits} bits is too long`);
}

function nameSeg(seg: string): Aml {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) throw new RangeError(`'${seg}' is not an ACPI name segment`);
  return [...seg.padEnd(4, "_")].map((c) => c.charCodeAt(0));
}

/** A NameString: "\\_SB_.PCI0", "^LNKA", "PRQ0" (segments shorter than four are padded with _). */
export function nameString(path: string): Aml {
  const out: Aml = [];
  let rest = path;
  if (rest.startsWith("\\")) {
    out.push(ROOT_CHAR);
    rest = rest.slice(1);
  }
  while (rest.startsWith("^")) {
    out.push(PARENT_PREFIX_CHAR);
    rest = rest.slice(1);
  }
  const segs = rest === "" ? [] : rest.split(".");
  if (segs.length === 0) out.push(NULL_NAME);
  else if (segs.length === 1) out.push(...nameSeg(segs[0]!));
  else if (segs.length === 2) out.push(DUAL_NAME_PREFIX, ...nameSeg(segs[0]!), ...nameSeg(segs[1]!));
  else {
    out.push(MULTI_NAME_PREFIX, segs.length);
    for (const s of segs) out.push(...nameSeg(s));
  }
  return out;
}

/** An integer constant in its shortest encoding. */
export function int(value: number | bigint): Aml {
  const v = BigInt(value);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`AML integer ${v} out of range`);
  if (v === 0n) return [ZERO_OP];
  if (v === 1n) return [ONE_OP];
  if (v === 0xffff_ffff_ffff_ffffn) return [ONES_OP];
  const bytes = (n: number): Aml => Array.from({ length: n }, (_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
  if (v <= 0xffn) return [BYTE_PREFIX, ...bytes(1)];
  if (v <= 0xffffn) return [WORD_PREFIX, ...bytes(2)];
  if (v <= 0xffff_ffffn) return [DWORD_PREFIX, ...bytes(4)];
  return [QWORD_PREFIX, ...bytes(8)];
}

export function string(text: string): Aml {
  if ([...text].some((c) => c.charCodeAt(0) === 0 || c.charCodeAt(0) > 0x7f))
    throw new RangeError("AML strings are 7-bit ASCII without NUL");
  return [STRING_PREFIX, ...[...text].map((c) => c.charCodeAt(0)), 0];
}

/** The 32-bit compressed EISA id of e.g. "PNP0A03", as an integer term. */
export function eisaId(id: string): Aml {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`'${id}' is not an EISA id`);
  const c = (i: number) => id.charCodeAt(i) - 0x40;
  const vendor = (c(0) << 10) | (c(1) << 5) | c(2);
  const product = Number.parseInt(id.slice(3), 16);
  // Stored big-endian by byte within each half: vendor bytes swapped, product bytes swapped.
  const value =
    ((vendor >> 8) | ((vendor & 0xff) << 8) | ((product >> 8) << 16) | ((product & 0xff) << 24)) >>> 0;
  return [DWORD_PREFIX, value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24];
}

// ---- named objects and scopes -----------------------------------------------------------

export function name(path: string, value: Aml): Aml {
  return [NAME_OP, ...nameString(path), ...value];
}

export function scope(path: string, ...terms: Aml[]): Aml {
  const body = [...nameString(path), ...terms.flat()];
  return [SCOPE_OP, ...pkgLength(body.length), ...body];
}

export function device(path: string, ...terms: Aml[]): Aml {
  const body = [...nameString(path), ...terms.flat()];
  return [EXT_OP_PREFIX, DEVICE_OP, ...pkgLength(body.length), ...body];
}

export function method(path: string, argCount: number, serialized: boolean, ...terms: Aml[]): Aml {
  const flags = (argCount & 7) | (serialized ? 0x08 : 0);
  const body = [...nameString(path), flags, ...terms.flat()];
  return [METHOD_OP, ...pkgLength(body.length), ...body];
}

export function buffer(bytes: ArrayLike<number>): Aml {
  const body = [...int(bytes.length), ...Array.from(bytes)];
  return [BUFFER_OP, ...pkgLength(body.length), ...body];
}

/** A package; elements are data terms or name references (nameString). */
export function pkg(...elements: Aml[]): Aml {
  if (elements.length > 255) throw new RangeError("AML package with more than 255 elements");
  const body = [elements.length, ...elements.flat()];
  return [PACKAGE_OP, ...pkgLength(body.length), ...body];
}

export function alias(source: string, aliasName: string): Aml {
  return [ALIAS_OP, ...nameString(source), ...nameString(aliasName)];
}

/** Region spaces for operationRegion. */
export const REGION_SYSTEM_MEMORY = 0x00;
export const REGION_SYSTEM_IO = 0x01;
export const REGION_PCI_CONFIG = 0x02;

export function operationRegion(path: string, space: number, offset: Aml, length: Aml): Aml {
  return [EXT_OP_PREFIX, OP_REGION_OP, ...nameString(path), space, ...offset, ...length];
}

/** Field access types (flags bits 3:0). */
export const FIELD_ANY_ACC = 0x00;
export const FIELD_BYTE_ACC = 0x01;
export const FIELD_WORD_ACC = 0x02;
export const FIELD_DWORD_ACC = 0x03;
/** Field update rule bits 6:5: Preserve. */
export const FIELD_PRESERVE = 0x00;

/** A Field over a region: `units` are [name, bits] or [null, bits] for reserved gaps. */
export function field(
  region: string,
  flags: number,
  units: readonly (readonly [string | null, number])[],
): Aml {
  const list: Aml = [];
  for (const [unitName, bits] of units) {
    if (unitName === null) list.push(0x00, ...fieldLength(bits));
    else list.push(...nameSeg(unitName), ...fieldLength(bits));
  }
  const body = [...nameString(region), flags, ...list];
  return [EXT_OP_PREFIX, FIELD_OP, ...pkgLength(body.length), ...body];
}

// ---- expressions and statements ---------------------------------------------------------

export function local(n: number): Aml {
  return [LOCAL0_OP + n];
}

export function arg(n: number): Aml {
  return [ARG0_OP + n];
}

/** A reference to a named object used as an operand or target. */
export function ref(path: string): Aml {
  return nameString(path);
}

/** No target: the result is discarded. */
export const NO_TARGET: Aml = [NULL_NAME];

export function store(value: Aml, target: Aml): Aml {
  return [STORE_OP, ...value, ...target];
}

export function and(a: Aml, b: Aml, target: Aml = NO_TARGET): Aml {
  return [AND_OP, ...a, ...b, ...target];
}

export function or(a: Aml, b: Aml, target: Aml = NO_TARGET): Aml {
  return [OR_OP, ...a, ...b, ...target];
}

export function add(a: Aml, b: Aml, target: Aml = NO_TARGET): Aml {
  return [ADD_OP, ...a, ...b, ...target];
}

export function subtract(a: Aml, b: Aml, target: Aml = NO_TARGET): Aml {
  return [SUBTRACT_OP, ...a, ...b, ...target];
}

export function shiftLeft(a: Aml, count: Aml, target: Aml = NO_TARGET): Aml {
  return [SHIFT_LEFT_OP, ...a, ...count, ...target];
}

export function shiftRight(a: Aml, count: Aml, target: Aml = NO_TARGET): Aml {
  return [SHIFT_RIGHT_OP, ...a, ...count, ...target];
}

export function lAnd(a: Aml, b: Aml): Aml {
  return [LAND_OP, ...a, ...b];
}

export function lNot(a: Aml): Aml {
  return [LNOT_OP, ...a];
}

export function lEqual(a: Aml, b: Aml): Aml {
  return [LEQUAL_OP, ...a, ...b];
}

export function lGreater(a: Aml, b: Aml): Aml {
  return [LGREATER_OP, ...a, ...b];
}

export function lLess(a: Aml, b: Aml): Aml {
  return [LLESS_OP, ...a, ...b];
}

export function notify(object: Aml, value: Aml): Aml {
  return [NOTIFY_OP, ...object, ...value];
}

export function ifThen(predicate: Aml, ...terms: Aml[]): Aml {
  const body = [...predicate, ...terms.flat()];
  return [IF_OP, ...pkgLength(body.length), ...body];
}

export function elseDo(...terms: Aml[]): Aml {
  const body = terms.flat();
  return [ELSE_OP, ...pkgLength(body.length), ...body];
}

export function returnValue(value: Aml): Aml {
  return [RETURN_OP, ...value];
}

export function createDWordField(source: Aml, byteIndex: number, fieldName: string): Aml {
  return [CREATE_DWORD_FIELD_OP, ...source, ...int(byteIndex), ...nameString(fieldName)];
}

export function createWordField(source: Aml, byteIndex: number, fieldName: string): Aml {
  return [CREATE_WORD_FIELD_OP, ...source, ...int(byteIndex), ...nameString(fieldName)];
}

export function createByteField(source: Aml, byteIndex: number, fieldName: string): Aml {
  return [CREATE_BYTE_FIELD_OP, ...source, ...int(byteIndex), ...nameString(fieldName)];
}

// ---- resource descriptors ---------------------------------------------------------------

/** A ResourceTemplate: the descriptors followed by the end tag, as a Buffer term. */
export function resourceTemplate(...descriptors: Aml[]): Aml {
  // End tag (small item 0xF, length 1) with a zero checksum, which means "don't check".
  return buffer([...descriptors.flat(), 0x79, 0x00]);
}

/** IRQNoFlags / IRQ: small item 0x4; edge, active-high unless told otherwise. */
export function irqDescriptor(
  irqs: readonly number[],
  options?: { level?: boolean; activeLow?: boolean; shared?: boolean },
): Aml {
  let mask = 0;
  for (const irq of irqs) mask |= 1 << irq;
  if (!options) return [0x22, mask & 0xff, mask >> 8];
  const flags = (options.level ? 0 : 0x01) | (options.activeLow ? 0x08 : 0) | (options.shared ? 0x10 : 0);
  return [0x23, mask & 0xff, mask >> 8, flags];
}

/** Extended Interrupt descriptor (large item 0x9), consumer. Byte 5 holds the first GSI. */
export function extendedInterrupt(
  gsis: readonly number[],
  options: { level: boolean; activeLow: boolean; shared: boolean },
): Aml {
  const flags =
    0x01 | (options.level ? 0 : 0x02) | (options.activeLow ? 0x04 : 0) | (options.shared ? 0x08 : 0);
  const length = 2 + 4 * gsis.length;
  return [0x89, length & 0xff, length >> 8, flags, gsis.length, ...gsis.flatMap((g) => le32(g))];
}

/** I/O port descriptor (small item 0x8) with 16-bit decode. */
export function ioPort(min: number, max: number, alignment: number, length: number): Aml {
  return [0x47, 0x01, min & 0xff, min >> 8, max & 0xff, max >> 8, alignment, length];
}

/** Memory32Fixed (large item 0x6). */
export function memory32Fixed(base: number, length: number, writable: boolean): Aml {
  return [0x86, 0x09, 0x00, writable ? 1 : 0, ...le32(base), ...le32(length)];
}

/** Word Bus Number (large item 0x8, resource type 2): a producer of bus numbers [min, max]. */
export function wordBusNumber(min: number, max: number): Aml {
  return wordAddressSpace(2, 0, min, max);
}

/** Word I/O (large item 0x8, resource type 1): a producer of ports [min, max], entire range. */
export function wordIo(min: number, max: number): Aml {
  // Type-specific flags 3: ISA and non-ISA ranges.
  return wordAddressSpace(1, 0x03, min, max);
}

function wordAddressSpace(resourceType: number, typeFlags: number, min: number, max: number): Aml {
  // General flags 0x0C: minimum and maximum fixed, producer, positive decode.
  return [
    0x88,
    0x0d,
    0x00,
    resourceType,
    0x0c,
    typeFlags,
    ...le16(0),
    ...le16(min),
    ...le16(max),
    ...le16(0),
    ...le16(max - min + 1),
  ];
}

/** DWord Memory (large item 0x7): a producer window [min, max], read/write, cacheable or not. */
export function dwordMemory(min: number, max: number, cacheable: boolean): Aml {
  // Type-specific flags: bit 0 read/write, bits 2:1 01 cacheable / 00 non-cacheable.
  const typeFlags = 0x01 | (cacheable ? 0x02 : 0);
  return [
    0x87,
    0x17,
    0x00,
    0x00,
    0x0c,
    typeFlags,
    ...le32(0),
    ...le32(min),
    ...le32(max),
    ...le32(0),
    ...le32(max - min + 1),
  ];
}

function le16(v: number): Aml {
  return [v & 0xff, (v >>> 8) & 0xff];
}

function le32(v: number): Aml {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}
