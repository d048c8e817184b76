// counter-js: a warmlane tool written in JavaScript.
//
// It keeps named counters in the host's session store, so a count outlives
// the instance that served the call (every instance serves one call and is
// then thrown away). Build it with `build.sh` beside this file.

import { get, set } from "warmlane:worker/session@0.1.0";
import { write } from "warmlane:worker/log@0.1.0";

const SCHEMA = {
  type: "object",
  properties: {
    counter: { type: "string", minLength: 1, maxLength: 64 },
    by: { type: "integer", minimum: -1000000, maximum: 1000000 },
  },
  required: ["counter"],
  additionalProperties: false,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const tool = {
  describe() {
    return {
      name: "counter-js",
      description:
        "Adds `by` (default 1) to the session's counter named `counter` and returns its new value.",
      inputSchema: JSON.stringify(SCHEMA),
    };
  },

  invoke(input) {
    // The host has checked `input` against SCHEMA already.
    const args = JSON.parse(input);
    const name = args.counter;
    const by = args.by ?? 1;
    const key = `counter:${name}`;
    let value;
    try {
      const stored = get(key);
      value = (stored === undefined ? 0 : Number(decoder.decode(stored))) + by;
      set(key, encoder.encode(String(value)));
    } catch (e) {
      // A `result` error arrives as a thrown value; a `tool-error` leaves as one.
      throw { tag: "failed", val: `the session store refused: ${JSON.stringify(e.payload ?? e)}` };
    }
    write("debug", `${name} = ${value}`);
    return JSON.stringify({ counter: name, value });
  },
};
