//! A test guest: a well-formed tool that also imports an interface the host
//! does not provide (`acme:net/fetch`), so `warmlane component check` and
//! the loader have an import to refuse by name.

wit_bindgen::generate!({
    inline: "
        package warmlane:worker@0.1.1;

        interface tool {
            record description { name: string, description: string, input-schema: string }
            variant tool-error { invalid-input(string), failed(string) }
            describe: func() -> description;
            invoke: func(input: string) -> result<string, tool-error>;
        }

        world foreign-import {
            import acme:net/fetch@1.0.0;
            export tool;
        }

        package acme:net@1.0.0 {
            interface fetch {
                handle: func(url: string) -> string;
            }
        }
    ",
    generate_all,
});

use exports::warmlane::worker::tool::{Description, Guest, ToolError};

struct ForeignImport;

impl Guest for ForeignImport {
    fn describe() -> Description {
        Description {
            name: "foreign-import".into(),
            description: "Fetches a URL.".into(),
            input_schema: r#"{"type":"object"}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        Ok(acme::net::fetch::handle(&input))
    }
}

export!(ForeignImport);
