import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type PortAccess, PortBus, type PortDevice, type Width } from "./bus.ts";

/** A device that records what it sees and answers reads with offset-derived values. */
function recorder(): PortDevice & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    ioRead(offset: number, width: Width) {
      log.push(`r${width}@${offset}`);
      return 0x11223344 + offset;
    },
    ioWrite(offset: number, width: Width, value: number) {
      log.push(`w${width}@${offset}=${value.toString(16)}`);
    },
  };
}

describe("PortBus", () => {
  it("dispatches to the claiming device with offsets, never absolute ports", () => {
    const bus = new PortBus();
    const dev = recorder();
    bus.register("dev", 0x3f8, 8, dev);
    bus.out8(0x3fb, 0x83);
    assert.equal(bus.in8(0x3fd), (0x11223344 + 5) & 0xff);
    bus.out16(0x3f8, 0x1234);
    assert.deepEqual(dev.log, ["w1@3=83", "r1@5", "w2@0=1234"]);
  });

  it("masks values to the access width", () => {
    const bus = new PortBus();
    bus.register("dev", 0x100, 4, recorder());
    assert.equal(bus.in16(0x100), 0x3344);
    assert.equal(bus.in32(0x100), 0x11223344);
    assert.equal(bus.in8(0x103), 0x47);
  });

  it("reads all ones from unclaimed ports and drops writes there", () => {
    const bus = new PortBus();
    assert.equal(bus.in8(0x80), 0xff);
    assert.equal(bus.in16(0x80), 0xffff);
    assert.equal(bus.in32(0x80), 0xffffffff);
    bus.out32(0x80, 0xdeadbeef); // must not throw
  });

  it("reports unclaimed accesses to the unhandled sink only when it is switched on", () => {
    const bus = new PortBus();
    const seen: PortAccess[] = [];
    bus.in8(0x1234);
    bus.unhandled = (a) => seen.push(a);
    bus.in8(0x1234);
    bus.out16(0x4321, 7);
    bus.unhandled = undefined;
    bus.in8(0x1234);
    assert.deepEqual(
      seen.map((a) => `${a.direction}:${a.port.toString(16)}:${a.width}:${a.value}`),
      ["in:1234:1:255", "out:4321:2:7"],
    );
  });

  it("traces every access with the device name when tracing is on", () => {
    const bus = new PortBus();
    bus.register("pic", 0x20, 2, recorder());
    const seen: string[] = [];
    bus.trace = (a) => seen.push(`${a.direction} ${a.port.toString(16)} ${a.device ?? "-"}`);
    bus.out8(0x20, 0x11);
    bus.in8(0x21);
    bus.in8(0x22);
    assert.deepEqual(seen, ["out 20 pic", "in 21 pic", "in 22 -"]);
  });

  it("refuses overlapping registrations and out-of-range ones", () => {
    const bus = new PortBus();
    bus.register("a", 0x60, 1, recorder());
    bus.register("b", 0x64, 1, recorder());
    assert.throws(() => bus.register("c", 0x5f, 2, recorder()), /0x0060.*already claimed by a/);
    assert.throws(() => bus.register("d", 0xffff, 2, recorder()), RangeError);
    assert.throws(() => bus.register("e", 0x10, 0, recorder()), RangeError);
  });

  it("splits wide accesses that straddle devices into bytes", () => {
    const bus = new PortBus();
    const a = recorder();
    const b = recorder();
    bus.register("a", 0x10, 1, a);
    bus.register("b", 0x11, 1, b);
    assert.equal(bus.in16(0x10), 0x4444);
    bus.out16(0x10, 0xbeef);
    assert.deepEqual(a.log, ["r1@0", "w1@0=ef"]);
    assert.deepEqual(b.log, ["r1@0", "w1@0=be"]);
    // Unclaimed bytes inside a split access read as ones.
    assert.equal(bus.in16(0x11), 0xff44);
  });

  it("frees a range on unregister so it can be claimed again", () => {
    const bus = new PortBus();
    bus.register("bar", 0xc000, 16, recorder());
    assert.equal(bus.claimant(0xc00f), "bar");
    bus.unregister(0xc000);
    assert.equal(bus.claimant(0xc00f), undefined);
    assert.equal(bus.in8(0xc000), 0xff);
    bus.register("bar2", 0xc008, 16, recorder());
    assert.throws(() => bus.unregister(0xc000), /no port range/);
  });
});
