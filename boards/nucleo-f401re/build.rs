//! Puts this board's linker scripts where cortex-m-rt's `link.x` finds them.
//!
//! `link.x` (from cortex-m-rt) includes `memory.x` (this board's memory map)
//! and, with cortex-m-rt's `device` feature, `device.x` (the interrupt handler
//! names used by `src/vectors.rs`).

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));
    for script in ["memory.x", "device.x"] {
        fs::copy(script, out.join(script))
            .unwrap_or_else(|e| panic!("copying {script} to {}: {e}", out.display()));
        println!("cargo:rerun-if-changed={script}");
    }
    println!("cargo:rustc-link-search={}", out.display());
    // Only firmware images (the binary and examples) are linked; the library
    // itself never is.
    println!("cargo:rustc-link-arg=-Tlink.x");
    println!("cargo:rerun-if-changed=build.rs");
}
