// A PS/2 (MF2) keyboard as seen from the 8042's keyboard port.
//
// The keyboard speaks scan code set 2 natively; set 1 is produced by converting the set-2 byte
// sequence (the same mapping the 8042 applies when translating), set 3 is answered but sent as
// set 2. Host keys are named by DOM `KeyboardEvent.code`. Typematic repeat is left to the host,
// which sends repeated `keyDown`s as a held key repeats.

import { StateError } from "../core/persist.ts";

/** Reply: command acknowledged. */
export const PS2_ACK = 0xfa;
/** Reply: basic assurance test passed. */
export const PS2_BAT_OK = 0xaa;
/** Reply: please resend (unknown command or bad parameter). */
export const PS2_RESEND = 0xfe;
/** Set 2 break prefix. */
const BREAK_PREFIX = 0xf0;
/** Extended key prefix. */
const EXTENDED = 0xe0;

/**
 * The 8042's set 2 -> set 1 translation for bytes 0x00-0x7F; bytes from 0x80 up translate to
 * themselves except 0x83 (F7) -> 0x41 and 0x84 (Alt+SysRq) -> 0x54.
 */
const SET2_TO_SET1_LOW = [
  0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59, 0x65, 0x38,
  0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b, 0x67, 0x2e, 0x2d, 0x20,
  0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d, 0x69, 0x31, 0x30, 0x23, 0x22, 0x15,
  0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f, 0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60,
  0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61, 0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36,
  0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76, 0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b,
  0x47, 0x7e, 0x7f, 0x6f, 0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49,
  0x46, 0x54,
];

/** 256-entry scan code translation table (set 2 byte -> set 1 byte). */
export const SET2_TO_SET1: Uint8Array = (() => {
  const table = new Uint8Array(256);
  for (let i = 0; i < 256; i++) table[i] = i;
  table.set(SET2_TO_SET1_LOW);
  table[0x83] = 0x41;
  table[0x84] = 0x54;
  return table;
})();

/**
 * Set 2 make codes by DOM `KeyboardEvent.code`. A value above 0xFF carries the 0xE0 prefix
 * (0xE0xx). PrintScreen and Pause have their own sequences (see `makeCodes`).
 */
const SET2_MAKE: Record<string, number> = {
  Escape: 0x76,
  F1: 0x05,
  F2: 0x06,
  F3: 0x04,
  F4: 0x0c,
  F5: 0x03,
  F6: 0x0b,
  F7: 0x83,
  F8: 0x0a,
  F9: 0x01,
  F10: 0x09,
  F11: 0x78,
  F12: 0x07,
  Backquote: 0x0e,
  Digit1: 0x16,
  Digit2: 0x1e,
  Digit3: 0x26,
  Digit4: 0x25,
  Digit5: 0x2e,
  Digit6: 0x36,
  Digit7: 0x3d,
  Digit8: 0x3e,
  Digit9: 0x46,
  Digit0: 0x45,
  Minus: 0x4e,
  Equal: 0x55,
  Backspace: 0x66,
  Tab: 0x0d,
  KeyQ: 0x15,
  KeyW: 0x1d,
  KeyE: 0x24,
  KeyR: 0x2d,
  KeyT: 0x2c,
  KeyY: 0x35,
  KeyU: 0x3c,
  KeyI: 0x43,
  KeyO: 0x44,
  KeyP: 0x4d,
  BracketLeft: 0x54,
  BracketRight: 0x5b,
  Backslash: 0x5d,
  CapsLock: 0x58,
  KeyA: 0x1c,
  KeyS: 0x1b,
  KeyD: 0x23,
  KeyF: 0x2b,
  KeyG: 0x34,
  KeyH: 0x33,
  KeyJ: 0x3b,
  KeyK: 0x42,
  KeyL: 0x4b,
  Semicolon: 0x4c,
  Quote: 0x52,
  Enter: 0x5a,
  ShiftLeft: 0x12,
  IntlBackslash: 0x61,
  KeyZ: 0x1a,
  KeyX: 0x22,
  KeyC: 0x21,
  KeyV: 0x2a,
  KeyB: 0x32,
  KeyN: 0x31,
  KeyM: 0x3a,
  Comma: 0x41,
  Period: 0x49,
  Slash: 0x4a,
  ShiftRight: 0x59,
  ControlLeft: 0x14,
  MetaLeft: 0xe01f,
  AltLeft: 0x11,
  Space: 0x29,
  AltRight: 0xe011,
  MetaRight: 0xe027,
  ContextMenu: 0xe02f,
  ControlRight: 0xe014,
  ScrollLock: 0x7e,
  Insert: 0xe070,
  Home: 0xe06c,
  PageUp: 0xe07d,
  Delete: 0xe071,
  End: 0xe069,
  PageDown: 0xe07a,
  ArrowUp: 0xe075,
  ArrowLeft: 0xe06b,
  ArrowDown: 0xe072,
  ArrowRight: 0xe074,
  NumLock: 0x77,
  NumpadDivide: 0xe04a,
  NumpadMultiply: 0x7c,
  NumpadSubtract: 0x7b,
  Numpad7: 0x6c,
  Numpad8: 0x75,
  Numpad9: 0x7d,
  NumpadAdd: 0x79,
  Numpad4: 0x6b,
  Numpad5: 0x73,
  Numpad6: 0x74,
  Numpad1: 0x69,
  Numpad2: 0x72,
  Numpad3: 0x7a,
  NumpadEnter: 0xe05a,
  Numpad0: 0x70,
  NumpadDecimal: 0x71,
  IntlRo: 0x51,
  IntlYen: 0x6a,
  KanaMode: 0x13,
  Convert: 0x64,
  NonConvert: 0x67,
  AudioVolumeMute: 0xe023,
  AudioVolumeDown: 0xe021,
  AudioVolumeUp: 0xe032,
  MediaPlayPause: 0xe034,
  MediaStop: 0xe03b,
  MediaTrackPrevious: 0xe015,
  MediaTrackNext: 0xe04d,
  BrowserHome: 0xe03a,
  Power: 0xe037,
  Sleep: 0xe03f,
  WakeUp: 0xe05e,
};

interface KeySequences {
  readonly make: Uint8Array;
  readonly brk: Uint8Array;
}

/** Pre-built make/break sequences per key, so a key event allocates nothing. */
const SEQUENCES: Map<string, KeySequences> = (() => {
  const map = new Map<string, KeySequences>();
  for (const [code, value] of Object.entries(SET2_MAKE)) {
    const byte = value & 0xff;
    if (value > 0xff) {
      map.set(code, {
        make: Uint8Array.of(EXTENDED, byte),
        brk: Uint8Array.of(EXTENDED, BREAK_PREFIX, byte),
      });
    } else {
      map.set(code, { make: Uint8Array.of(byte), brk: Uint8Array.of(BREAK_PREFIX, byte) });
    }
  }
  map.set("PrintScreen", {
    make: Uint8Array.of(EXTENDED, 0x12, EXTENDED, 0x7c),
    brk: Uint8Array.of(EXTENDED, BREAK_PREFIX, 0x7c, EXTENDED, BREAK_PREFIX, 0x12),
  });
  // Pause sends make and break together on press, nothing on release.
  map.set("Pause", {
    make: Uint8Array.of(0xe1, 0x14, 0x77, 0xe1, BREAK_PREFIX, 0x14, BREAK_PREFIX, 0x77),
    brk: new Uint8Array(0),
  });
  return map;
})();

/** Set 2 make code bytes for a DOM key code, or undefined if the keyboard has no such key. */
export function makeCodes(code: string): Uint8Array | undefined {
  return SEQUENCES.get(code)?.make;
}

/** Set 2 break code bytes for a DOM key code. */
export function breakCodes(code: string): Uint8Array | undefined {
  return SEQUENCES.get(code)?.brk;
}

/** A PS/2 device's output buffer: a small byte ring. */
export class Ps2Queue {
  private readonly bytes: Uint8Array;
  private head = 0;
  count = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
  }

  get capacity(): number {
    return this.bytes.length;
  }

  get free(): number {
    return this.bytes.length - this.count;
  }

  push(byte: number): void {
    if (this.count >= this.bytes.length) return; // a full buffer drops, as a keyboard overruns
    this.bytes[(this.head + this.count) % this.bytes.length] = byte & 0xff;
    this.count++;
  }

  shift(): number {
    if (this.count === 0) return 0;
    const byte = this.bytes[this.head]!;
    this.head = (this.head + 1) % this.bytes.length;
    this.count--;
    return byte;
  }

  clear(): void {
    this.head = 0;
    this.count = 0;
  }

  toArray(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.bytes[(this.head + i) % this.bytes.length]!);
    return out;
  }

  load(bytes: unknown, what: string): void {
    if (!Array.isArray(bytes) || bytes.length > this.bytes.length) {
      throw new StateError(`${what}: queue should be at most ${this.bytes.length} bytes`);
    }
    this.clear();
    for (const b of bytes) {
      if (typeof b !== "number" || !Number.isInteger(b) || b < 0 || b > 255) {
        throw new StateError(`${what}: queue holds a non-byte`);
      }
      this.push(b);
    }
  }
}

/** Bytes kept free for command replies when key events arrive. */
const REPLY_RESERVE = 4;
const QUEUE_SIZE = 32;

export interface Ps2KeyboardState {
  queue: number[];
  scanning: boolean;
  scanCodeSet: number;
  leds: number;
  typematic: number;
  pendingCommand: number;
  lastSent: number;
}

export class Ps2Keyboard {
  readonly stateVersion = 1;
  readonly queue = new Ps2Queue(QUEUE_SIZE);
  private scanning = true;
  private scanCodeSet = 2;
  private leds = 0;
  private typematic = 0x2b;
  /** A command waiting for its parameter byte, or 0. */
  private pendingCommand = 0;
  private lastSent = 0;
  private readonly onData: () => void;
  private readonly onLeds: ((leds: number) => void) | undefined;

  /** `onData` is called whenever bytes are queued for the controller. */
  constructor(onData: () => void, onLeds?: (leds: number) => void) {
    this.onData = onData;
    this.onLeds = onLeds;
  }

  /** Scroll (bit 0), Num (bit 1) and Caps (bit 2) Lock LEDs as last set by the guest. */
  get ledState(): number {
    return this.leds;
  }

  /** A host key went down. Returns false for an unknown key code. */
  keyDown(code: string): boolean {
    const seq = SEQUENCES.get(code);
    if (!seq) return false;
    this.sendKey(seq.make);
    return true;
  }

  /** A host key went up. Returns false for an unknown key code. */
  keyUp(code: string): boolean {
    const seq = SEQUENCES.get(code);
    if (!seq) return false;
    this.sendKey(seq.brk);
    return true;
  }

  private sendKey(set2: Uint8Array): void {
    if (!this.scanning || set2.length === 0) return;
    // A key event that doesn't fit is lost whole, never cut in half.
    if (this.queue.free < set2.length + REPLY_RESERVE) return;
    if (this.scanCodeSet === 1) {
      for (let i = 0; i < set2.length; i++) {
        const b = set2[i]!;
        if (b === EXTENDED || b === 0xe1) this.queue.push(b);
        else if (b === BREAK_PREFIX) this.queue.push(SET2_TO_SET1[set2[++i]!]! | 0x80);
        else this.queue.push(SET2_TO_SET1[b]!);
      }
    } else {
      for (let i = 0; i < set2.length; i++) this.queue.push(set2[i]!);
    }
    this.onData();
  }

  private reply(byte: number): void {
    this.lastSent = byte;
    this.queue.push(byte);
  }

  /** A byte from the controller (a command or a command's parameter). */
  write(byte: number): void {
    byte &= 0xff;
    const pending = this.pendingCommand;
    // No parameter is 0x80 or above: such a byte is a new command that cancels the old one.
    if (pending !== 0 && byte < 0x80) {
      this.pendingCommand = 0;
      switch (pending) {
        case 0xed:
          this.leds = byte & 7;
          this.reply(PS2_ACK);
          this.onLeds?.(this.leds);
          break;
        case 0xf0:
          if (byte === 0) {
            this.reply(PS2_ACK);
            this.reply(this.scanCodeSet);
          } else if (byte <= 3) {
            this.scanCodeSet = byte;
            this.reply(PS2_ACK);
          } else {
            this.reply(PS2_RESEND);
          }
          break;
        default: // 0xf3 typematic rate/delay
          this.typematic = byte & 0x7f;
          this.reply(PS2_ACK);
          break;
      }
      this.onData();
      return;
    }
    this.pendingCommand = 0;
    switch (byte) {
      case 0xed: // set LEDs
      case 0xf0: // get/set scan code set
      case 0xf3: // set typematic rate/delay
        this.pendingCommand = byte;
        this.reply(PS2_ACK);
        break;
      case 0xee: // echo
        this.reply(0xee);
        break;
      case 0xf2: // identify: MF2 keyboard
        this.reply(PS2_ACK);
        this.reply(0xab);
        this.reply(0x83);
        break;
      case 0xf4: // enable scanning
        this.scanning = true;
        this.reply(PS2_ACK);
        break;
      case 0xf5: // disable scanning and restore defaults
        this.setDefaults();
        this.scanning = false;
        this.reply(PS2_ACK);
        break;
      case 0xf6: // restore defaults
        this.setDefaults();
        this.reply(PS2_ACK);
        break;
      case 0xf7:
      case 0xf8:
      case 0xf9:
      case 0xfa:
      case 0xfb:
      case 0xfc:
      case 0xfd: // set 3 key type commands: acknowledged, no effect on set 2 output
        this.reply(PS2_ACK);
        break;
      case 0xfe: // resend
        this.queue.push(this.lastSent);
        break;
      case 0xff: // reset and self-test
        this.reset();
        this.reply(PS2_ACK);
        this.reply(PS2_BAT_OK);
        break;
      default:
        this.reply(PS2_RESEND);
        break;
    }
    this.onData();
  }

  private setDefaults(): void {
    this.typematic = 0x2b;
    this.scanCodeSet = 2;
  }

  /** Power-on state (the controller re-signals data itself). */
  reset(): void {
    this.queue.clear();
    this.setDefaults();
    this.scanning = true;
    this.leds = 0;
    this.pendingCommand = 0;
  }

  saveState(): Ps2KeyboardState {
    return {
      queue: this.queue.toArray(),
      scanning: this.scanning,
      scanCodeSet: this.scanCodeSet,
      leds: this.leds,
      typematic: this.typematic,
      pendingCommand: this.pendingCommand,
      lastSent: this.lastSent,
    };
  }

  loadState(state: Ps2KeyboardState): void {
    if (typeof state !== "object" || state === null) throw new StateError("keyboard: state is not an object");
    this.queue.load(state.queue, "keyboard");
    const set = state.scanCodeSet;
    if (set !== 1 && set !== 2 && set !== 3) throw new StateError("keyboard: scan code set should be 1-3");
    this.scanning = state.scanning === true;
    this.scanCodeSet = set;
    this.leds = Number(state.leds) & 7;
    this.typematic = Number(state.typematic) & 0x7f;
    const pending = Number(state.pendingCommand);
    this.pendingCommand = pending === 0xed || pending === 0xf0 || pending === 0xf3 ? pending : 0;
    this.lastSent = Number(state.lastSent) & 0xff;
  }
}
