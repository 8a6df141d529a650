//! Compiles this crate's copies of zio-core's modules against loom.

fn main() {
    println!("cargo::rustc-cfg=zio_loom");
}
