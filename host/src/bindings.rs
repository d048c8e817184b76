//! Host-side bindings for the three worlds of `wit/worker.wit`.

/// The `page-parser-component` world.
pub(crate) mod parser {
    wasmtime::component::bindgen!({ path: "../wit", world: "page-parser-component" });
}

/// The `chunker-component` world.
pub(crate) mod chunker {
    wasmtime::component::bindgen!({ path: "../wit", world: "chunker-component" });
}

/// The `tool-component` world, with the `session` and `log` imports.
pub(crate) mod tool {
    wasmtime::component::bindgen!({ path: "../wit", world: "tool-component" });
}
