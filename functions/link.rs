//! The build script of the three functions: their release binaries are linked as executables
//! at a fixed address (`-no-pie`), which drops the 0.3–0.4 MB table of relocations a
//! position-independent executable carries for the loader to apply at every cold start. The
//! shared libraries, heap and stack are still placed at random; only the function's own image
//! is not. Debug builds (tests, the local stack) are left as the toolchain links them.

fn main() {
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
