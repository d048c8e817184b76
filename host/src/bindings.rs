//! Host-side bindings for the three worlds of `wit/worker.wit`; their
//! `wasi:http` import is `wasmtime-wasi-http`'s, linked in `state`.

/// The `page-parser-component` world.
pub(crate) mod parser {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "page-parser-component",
        with: { "wasi": wasmtime_wasi_http::p2::bindings::sync },
    });
}

/// The `chunker-component` world.
pub(crate) mod chunker {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "chunker-component",
        with: { "wasi": wasmtime_wasi_http::p2::bindings::sync },
    });
}

/// The `tool-component` world, with the `session` and `log` imports.
pub(crate) mod tool {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "tool-component",
        with: { "wasi": wasmtime_wasi_http::p2::bindings::sync },
    });
}
