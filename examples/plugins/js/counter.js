// counter-js: a warmlane tool written in JavaScript.
//
// It keeps named counters in the host's session store, so a count outlives
// the instance that served the call (every instance serves one call and is
// then thrown away). Build it with `build.sh` beside this file.

import { compareAndSwap, get, increment } from "warmlane:worker/session@0.1.1";
import { write } from "warmlane:worker/log@0.1.1";

const SCHEMA = {
  type: "object",
  properties: {
    counter: { type: "string", minLength: 1, maxLength: 64 },
    by: { type: "integer", minimum: -1000000, maximum: 1000000 },
    expect: { type: "integer", description: "Add only if the counter is this now." },
  },
  required: ["counter"],
  additionalProperties: false,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Adds `by` to the counter under `key`, in one atomic step. */
function add(key, by) {
  // An s64 is a BigInt in JavaScript.
  return Number(increment(key, BigInt(by)));
}

/** Adds `by` to the counter under `key` only if it is `expect` now. */
function addIf(key, by, expect) {
  const stored = get(key);
  const now = stored === undefined ? 0 : Number(decoder.decode(stored));
  if (now !== expect) {
    // A plain Error is the tool failing, with its message.
    throw new Error(`${key} is ${now}, not ${expect}`);
  }
  const value = now + by;
  // Stored only if nobody changed it since it was read.
  if (!compareAndSwap(key, stored, encoder.encode(String(value)))) {
    throw new Error(`${key} changed while it was being updated`);
  }
  return value;
}

export const tool = {
  describe() {
    return {
      name: "counter-js",
      description:
        "Adds `by` (default 1) to the session's counter named `counter` (only if it is `expect`, when given) and returns its new value.",
      inputSchema: JSON.stringify(SCHEMA),
    };
  },

  invoke(input) {
    // The host has checked `input` against SCHEMA already.
    const { counter, by = 1, expect } = JSON.parse(input);
    const key = `counter:${counter}`;
    let value;
    try {
      value = expect === undefined ? add(key, by) : addIf(key, by, expect);
    } catch (e) {
      // A session operation's error arrives as a thrown ComponentError with
      // a `payload`; a `tool-error` leaves as a thrown variant.
      if (e.payload !== undefined) {
        throw { tag: "failed", val: `the session store refused: ${JSON.stringify(e.payload)}` };
      }
      throw e;
    }
    write("debug", `${counter} = ${value}`);
    return JSON.stringify({ counter, value });
  },
};
