// A PS/2 mouse on the 8042's auxiliary port, with the IntelliMouse (wheel, ID 3) and
// IntelliMouse Explorer (wheel + buttons 4/5, ID 4) extensions that drivers unlock with the
// sample-rate "knock" sequences 200,100,80 and 200,200,80.
//
// Motion from the host accumulates and leaves as packets only while the output buffer has room,
// so a slow guest sees coalesced movement instead of lost packets.

import { StateError } from "../core/persist.ts";
import { PS2_ACK, PS2_BAT_OK, PS2_RESEND, Ps2Queue } from "./ps2-keyboard.ts";

/** Packet byte 0: always one (lets drivers resynchronise). */
const PACKET_ALWAYS_ONE = 0x08;
/** Packet byte 0: X is negative. */
const PACKET_X_SIGN = 0x10;
/** Packet byte 0: Y is negative. */
const PACKET_Y_SIGN = 0x20;
/** Status byte 1: remote mode. */
const STATUS_REMOTE = 0x40;
/** Status byte 1: data reporting enabled. */
const STATUS_ENABLED = 0x20;
/** Status byte 1: 2:1 scaling. */
const STATUS_SCALING = 0x10;

/** Device IDs. */
const ID_STANDARD = 0;
const ID_WHEEL = 3;
const ID_FIVE_BUTTON = 4;

/** Host button bits for `move`. */
export const MOUSE_LEFT = 0x01;
export const MOUSE_RIGHT = 0x02;
export const MOUSE_MIDDLE = 0x04;
export const MOUSE_BACK = 0x08;
export const MOUSE_FORWARD = 0x10;

const QUEUE_SIZE = 32;
/** Bytes kept free for command replies when packets are generated. */
const REPLY_RESERVE = 4;

export interface Ps2MouseState {
  queue: number[];
  id: number;
  remote: boolean;
  wrap: boolean;
  enabled: boolean;
  scaling21: boolean;
  sampleRate: number;
  resolution: number;
  recentRates: number[];
  pendingCommand: number;
  lastSent: number;
  dx: number;
  dy: number;
  dz: number;
  buttons: number;
  reportedButtons: number;
}

export class Ps2Mouse {
  readonly stateVersion = 1;
  readonly queue = new Ps2Queue(QUEUE_SIZE);
  private id = ID_STANDARD;
  private remote = false;
  private wrap = false;
  private enabled = false;
  private scaling21 = false;
  private sampleRate = 100;
  private resolution = 2;
  /** The last three sample rates set, oldest first, for the ID knock sequences. */
  private readonly recentRates = [0, 0, 0];
  private pendingCommand = 0;
  private lastSent = 0;
  /** Motion not yet reported (PS/2 axes: X right, Y up; Z positive = wheel towards the user). */
  private dx = 0;
  private dy = 0;
  private dz = 0;
  private buttons = 0;
  private reportedButtons = 0;
  private readonly onData: () => void;

  constructor(onData: () => void) {
    this.onData = onData;
  }

  /** The device ID the guest has unlocked (0, 3 or 4). */
  get deviceId(): number {
    return this.id;
  }

  /**
   * Host motion: `dx` right, `dy` down (screen direction, like DOM movementY), `dz` wheel
   * (positive scrolls down, like DOM deltaY), `buttons` a MOUSE_* mask.
   */
  move(dx: number, dy: number, dz: number, buttons: number): void {
    this.buttons = buttons & 0x1f;
    // A stream-mode mouse with reporting off doesn't count motion (remote mode always does).
    if (!this.enabled && !this.remote) {
      this.reportedButtons = this.buttons;
      return;
    }
    this.dx += Math.trunc(dx) || 0;
    this.dy -= Math.trunc(dy) || 0;
    this.dz += Math.trunc(dz) || 0;
    this.flush();
  }

  /** Enabling or disabling reporting starts the movement counters afresh. */
  private resetCounters(): void {
    this.dx = 0;
    this.dy = 0;
    this.dz = 0;
    this.reportedButtons = this.buttons;
  }

  private get packetSize(): number {
    return this.id === ID_STANDARD ? 3 : 4;
  }

  private get hasMotion(): boolean {
    return this.dx !== 0 || this.dy !== 0 || this.dz !== 0 || this.buttons !== this.reportedButtons;
  }

  /** Emits packets for pending motion while the buffer has room (stream mode only). */
  flush(): void {
    if (this.remote || !this.enabled || this.wrap) return;
    let sent = false;
    while (this.hasMotion && this.queue.free >= this.packetSize + REPLY_RESERVE) {
      this.sendPacket();
      sent = true;
    }
    if (sent) this.onData();
  }

  private sendPacket(): void {
    const x = Math.max(-255, Math.min(255, this.dx));
    const y = Math.max(-255, Math.min(255, this.dy));
    this.dx -= x;
    this.dy -= y;
    const b = this.buttons;
    this.queue.push(
      PACKET_ALWAYS_ONE |
        (b & MOUSE_LEFT ? 0x01 : 0) |
        (b & MOUSE_RIGHT ? 0x02 : 0) |
        (b & MOUSE_MIDDLE ? 0x04 : 0) |
        (x < 0 ? PACKET_X_SIGN : 0) |
        (y < 0 ? PACKET_Y_SIGN : 0),
    );
    this.queue.push(x & 0xff);
    this.queue.push(y & 0xff);
    if (this.id === ID_WHEEL) {
      const z = Math.max(-127, Math.min(127, this.dz));
      this.dz -= z;
      this.queue.push(z & 0xff);
    } else if (this.id === ID_FIVE_BUTTON) {
      const z = Math.max(-8, Math.min(7, this.dz));
      this.dz -= z;
      this.queue.push((z & 0x0f) | (b & MOUSE_BACK ? 0x10 : 0) | (b & MOUSE_FORWARD ? 0x20 : 0));
    } else {
      this.dz = 0;
    }
    this.reportedButtons = b;
  }

  private reply(byte: number): void {
    this.lastSent = byte;
    this.queue.push(byte);
  }

  /** A byte from the controller (0xD4 "write to auxiliary device"). */
  write(byte: number): void {
    byte &= 0xff;
    if (this.pendingCommand !== 0) {
      const command = this.pendingCommand;
      this.pendingCommand = 0;
      if (command === 0xf3) {
        this.sampleRate = byte;
        this.recentRates.shift();
        this.recentRates.push(byte);
        this.checkKnock();
      } else {
        this.resolution = byte & 3;
      }
      this.reply(PS2_ACK);
      this.onData();
      return;
    }
    if (this.wrap && byte !== 0xec && byte !== 0xff) {
      this.reply(byte);
      this.onData();
      return;
    }
    switch (byte) {
      case 0xe6:
        this.scaling21 = false;
        this.reply(PS2_ACK);
        break;
      case 0xe7:
        this.scaling21 = true;
        this.reply(PS2_ACK);
        break;
      case 0xe8: // set resolution
      case 0xf3: // set sample rate
        this.pendingCommand = byte;
        this.reply(PS2_ACK);
        break;
      case 0xe9: // status request
        this.reply(PS2_ACK);
        this.queue.push(
          (this.remote ? STATUS_REMOTE : 0) |
            (this.enabled ? STATUS_ENABLED : 0) |
            (this.scaling21 ? STATUS_SCALING : 0) |
            (this.buttons & MOUSE_LEFT ? 0x04 : 0) |
            (this.buttons & MOUSE_MIDDLE ? 0x02 : 0) |
            (this.buttons & MOUSE_RIGHT ? 0x01 : 0),
        );
        this.queue.push(this.resolution);
        this.queue.push(this.sampleRate);
        break;
      case 0xea: // stream mode
        this.remote = false;
        this.reply(PS2_ACK);
        break;
      case 0xeb: // read data (remote mode): one packet, even without motion
        this.reply(PS2_ACK);
        this.sendPacket();
        break;
      case 0xec: // reset wrap mode
        this.wrap = false;
        this.reply(PS2_ACK);
        break;
      case 0xee: // set wrap mode
        this.wrap = true;
        this.reply(PS2_ACK);
        break;
      case 0xf0: // remote mode
        this.remote = true;
        this.reply(PS2_ACK);
        break;
      case 0xf2: // get device ID
        this.reply(PS2_ACK);
        this.queue.push(this.id);
        break;
      case 0xf4: // enable data reporting
        this.enabled = true;
        this.resetCounters();
        this.reply(PS2_ACK);
        break;
      case 0xf5: // disable data reporting
        this.enabled = false;
        this.resetCounters();
        this.reply(PS2_ACK);
        break;
      case 0xf6: // set defaults
        this.setDefaults();
        this.reply(PS2_ACK);
        break;
      case 0xfe: // resend
        this.queue.push(this.lastSent);
        break;
      case 0xff: // reset
        this.reset();
        this.reply(PS2_ACK);
        this.queue.push(PS2_BAT_OK);
        this.queue.push(ID_STANDARD);
        break;
      default:
        this.reply(PS2_RESEND);
        break;
    }
    this.onData();
    this.flush();
  }

  private checkKnock(): void {
    const [a, b, c] = this.recentRates;
    if (a === 200 && b === 100 && c === 80 && this.id === ID_STANDARD) this.id = ID_WHEEL;
    else if (a === 200 && b === 200 && c === 80 && this.id === ID_WHEEL) this.id = ID_FIVE_BUTTON;
  }

  private setDefaults(): void {
    this.sampleRate = 100;
    this.resolution = 2;
    this.scaling21 = false;
    this.enabled = false;
    this.remote = false;
  }

  /** Power-on state: standard mouse, stream mode, reporting off. */
  reset(): void {
    this.queue.clear();
    this.setDefaults();
    this.id = ID_STANDARD;
    this.wrap = false;
    this.pendingCommand = 0;
    this.recentRates.fill(0);
    this.dx = 0;
    this.dy = 0;
    this.dz = 0;
    this.reportedButtons = this.buttons;
  }

  saveState(): Ps2MouseState {
    return {
      queue: this.queue.toArray(),
      id: this.id,
      remote: this.remote,
      wrap: this.wrap,
      enabled: this.enabled,
      scaling21: this.scaling21,
      sampleRate: this.sampleRate,
      resolution: this.resolution,
      recentRates: [...this.recentRates],
      pendingCommand: this.pendingCommand,
      lastSent: this.lastSent,
      dx: this.dx,
      dy: this.dy,
      dz: this.dz,
      buttons: this.buttons,
      reportedButtons: this.reportedButtons,
    };
  }

  loadState(state: Ps2MouseState): void {
    if (typeof state !== "object" || state === null) throw new StateError("mouse: state is not an object");
    this.queue.load(state.queue, "mouse");
    const id = state.id;
    if (id !== ID_STANDARD && id !== ID_WHEEL && id !== ID_FIVE_BUTTON) {
      throw new StateError("mouse: unknown device id");
    }
    const rates = state.recentRates;
    if (!Array.isArray(rates) || rates.length !== 3) throw new StateError("mouse: recentRates should hold 3");
    const int = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? Math.trunc(v) : 0);
    this.id = id;
    this.remote = state.remote === true;
    this.wrap = state.wrap === true;
    this.enabled = state.enabled === true;
    this.scaling21 = state.scaling21 === true;
    this.sampleRate = int(state.sampleRate) & 0xff;
    this.resolution = int(state.resolution) & 3;
    for (let i = 0; i < 3; i++) this.recentRates[i] = int(rates[i]) & 0xff;
    const pending = int(state.pendingCommand);
    this.pendingCommand = pending === 0xe8 || pending === 0xf3 ? pending : 0;
    this.lastSent = int(state.lastSent) & 0xff;
    this.dx = int(state.dx);
    this.dy = int(state.dy);
    this.dz = int(state.dz);
    this.buttons = int(state.buttons) & 0x1f;
    this.reportedButtons = int(state.reportedButtons) & 0x1f;
  }
}
