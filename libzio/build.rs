//! Redirects the library's own calls away from its exported hooks.
//!
//! Rust code (std, zio-core) calls `memcpy`, `free`, `write`, ... like any C
//! code. Inside libzio.so those calls would bind to our own exported hooks.
//! `-Wl,--wrap=SYM` makes every undefined reference to `SYM` in the linked
//! objects resolve to `__wrap_SYM` instead, which `twin!` (lib.rs) defines
//! with each hook as a plain forward to the real libc function. The hooks'
//! own definitions are not references, so they stay exported under their
//! plain names.

fn main() {
    println!("cargo:rerun-if-changed=hooked-symbols.txt");
    let list = std::fs::read_to_string("hooked-symbols.txt").expect("hooked-symbols.txt");
    for sym in list.lines().map(str::trim).filter(|s| !s.is_empty()) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap={sym}");
    }
    let eh = std::process::Command::new("gcc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .expect("gcc");
    let eh = String::from_utf8(eh.stdout).expect("path");
    let dir = std::path::Path::new(eh.trim()).parent().expect("dir");
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=gcc_eh");
}
