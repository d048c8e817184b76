// __NAME__: a warmlane tool. `./build.sh` builds __NAME__.wasm; `./test.sh`
// builds it and tries it with `warmlane component check` and `call`.
//
// Every instance serves one call and is then thrown away: what must outlive
// a call goes into the host's session store (`session`).

import { increment } from "warmlane:worker/session@0.1.1";
import { write } from "warmlane:worker/log@0.1.1";

// The input the host checks every call against before it reaches `invoke`.
const SCHEMA = {
  type: "object",
  properties: { text: { type: "string", maxLength: 10000 } },
  required: ["text"],
  additionalProperties: false,
};

export const tool = {
  describe() {
    return {
      name: "__NAME__",
      description:
        "Returns `text` with its length in characters, and counts the calls made in the session.",
      inputSchema: JSON.stringify(SCHEMA),
    };
  },

  invoke(input) {
    const { text } = JSON.parse(input);
    let calls;
    try {
      // One atomic step, so parallel calls in a session all count. An s64
      // is a BigInt in JavaScript.
      calls = Number(increment("calls", 1n));
    } catch (e) {
      // A `result`'s error arrives as a thrown value with a `payload`; a
      // `tool-error` leaves as a thrown variant (an `Error` works too: the
      // host reports its message as the tool's failure).
      throw { tag: "failed", val: `the session refused: ${JSON.stringify(e.payload ?? String(e))}` };
    }
    write("debug", `call ${calls} in this session`);
    return JSON.stringify({ text, characters: [...text].length, calls });
  },
};
