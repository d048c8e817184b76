//! A test guest that exports `warmlane:worker/tool@0.1.0` with the wrong
//! signatures, so the host's load-time check has something to refuse.

wit_bindgen::generate!({
    inline: "
        package warmlane:worker@0.1.0;
        interface tool {
            describe: func() -> string;
            invoke: func(input: u32) -> u32;
        }
        world mismatched { export tool; }
    ",
});

struct Mismatched;

impl exports::warmlane::worker::tool::Guest for Mismatched {
    fn describe() -> String {
        "mismatched".into()
    }

    fn invoke(input: u32) -> u32 {
        input
    }
}

export!(Mismatched);
