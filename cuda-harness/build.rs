//! Compiles kernels/*.cu as host C++ (g++ -std=c++20, shim.h force-included)
//! into the harness library.

fn main() {
    let kernels = ["common.cuh", "noise.cu", "step.cu", "loss.cu"];
    for k in kernels {
        println!("cargo:rerun-if-changed=../kernels/{k}");
    }
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/harness.cpp");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .file(format!("{dir}/csrc/harness.cpp"))
        .flag("-include")
        .flag(format!("{dir}/csrc/shim.h"))
        // As the device build (--fmad=false): only the written fmaf fuse.
        .flag("-ffp-contract=off")
        .flag("-fno-fast-math")
        .flag("-pthread")
        .warnings(true)
        // #pragma unroll is for NVRTC.
        .flag("-Wno-unknown-pragmas")
        .opt_level(2)
        .compile("gaussflow_cuda_harness");
    println!("cargo:rustc-link-lib=pthread");
}
