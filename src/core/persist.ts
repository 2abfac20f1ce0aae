// Versioned plain-data state for snapshots and migration.
//
// Every device and the CPU implement `Persistent`: `saveState()` returns plain data (numbers,
// strings, booleans, null, arrays, typed arrays and plain objects: what structured clone and the
// snapshot encoder accept), and `loadState()` takes it back. Live collaborators (memory, IRQ
// lines, host files) are never part of the state: they are passed to constructors, as on boot.
// `stateVersion` grows when the shape changes; loaders accept older versions with defaults.

export interface Persistent<S> {
  /** Version of the shape returned by saveState. */
  readonly stateVersion: number;
  saveState(): S;
  /** Restores state saved by this or an older version (`version`); throws StateError if it can't. */
  loadState(state: S, version: number): void;
}

/** State as stored: the version travels with the data. */
export interface VersionedState<S = unknown> {
  readonly version: number;
  readonly state: S;
}

/** A snapshot or migration stream carries state this build cannot use. */
export class StateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StateError";
  }
}

export function saveVersioned<S>(component: Persistent<S>): VersionedState<S> {
  return { version: component.stateVersion, state: component.saveState() };
}

export function loadVersioned<S>(
  component: Persistent<S>,
  saved: VersionedState<unknown>,
  what: string,
): void {
  if (typeof saved !== "object" || saved === null || !Number.isInteger(saved.version)) {
    throw new StateError(`${what}: saved state has no version`);
  }
  if (saved.version > component.stateVersion) {
    throw new StateError(
      `${what}: saved state version ${saved.version} is newer than this build's ${component.stateVersion}`,
    );
  }
  assertPlainData(saved.state, what);
  component.loadState(saved.state as S, saved.version);
}

/** Throws StateError unless `value` is plain data (no functions, classes, cycles, or NaN-free checks skipped). */
export function assertPlainData(value: unknown, path = "state", seen = new Set<object>()): void {
  switch (typeof value) {
    case "number":
    case "string":
    case "boolean":
      return;
    case "object": {
      if (value === null) return;
      if (ArrayBuffer.isView(value)) return;
      if (seen.has(value)) throw new StateError(`${path} contains a cycle`);
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) assertPlainData(value[i], `${path}[${i}]`, seen);
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null)
          throw new StateError(
            `${path} is a ${proto?.constructor?.name ?? "non-plain object"}, not plain data`,
          );
        for (const [k, v] of Object.entries(value)) assertPlainData(v, `${path}.${k}`, seen);
      }
      seen.delete(value);
      return;
    }
    default:
      throw new StateError(`${path} is a ${typeof value}, not plain data`);
  }
}

/** Reads a field of saved state, checking its type; for loadState implementations. */
export function field<T extends "number" | "boolean" | "string">(
  state: Record<string, unknown>,
  name: string,
  type: T,
  fallback?: T extends "number" ? number : T extends "boolean" ? boolean : string,
): T extends "number" ? number : T extends "boolean" ? boolean : string {
  const v = state[name];
  if (v === undefined && fallback !== undefined) return fallback as never;
  if (typeof v !== type || (type === "number" && !Number.isFinite(v))) {
    throw new StateError(
      `field '${name}' should be a ${type}, got ${v === undefined ? "nothing" : typeof v}`,
    );
  }
  return v as never;
}
