// The CPU's run interface: instruction budgets and ending a slice early.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JitMode } from "./jit/jit.ts";
import { assemble, makeMachine, startFlat32 } from "./test-support.ts";

describe("run slices", () => {
  for (const jit of ["off", "force"] as JitMode[]) {
    it(`endSlice from a device makes run return at the next block boundary (translator ${jit})`, () => {
      const m = makeMachine({ jit });
      startFlat32(m, assemble("again: in al, 0x80\ninc ebx\njmp again", 32, 0x10000));
      let reads = 0;
      m.ports.register("poller", 0x80, 1, {
        ioRead: () => {
          if (++reads === 1000) m.cpu.endSlice();
          return 0;
        },
        ioWrite: () => {},
      });
      const retired = m.cpu.run(10_000_000);
      assert.ok(retired < 3000 + 10, `retired ${retired}`);
      assert.ok(reads >= 1000 && reads <= 1001, `reads ${reads}`);
      // The next slice runs normally again.
      assert.equal(m.cpu.run(300), 300);
    });
  }
});
