//! `cube_kernels`: the fused steps' CubeCL kernels are compiled (the `wgpu` feature) and can
//! reach the tensors (burn's `fusion` off: with it, a wgpu tensor is a fusion handle, not a
//! CubeCL tensor, and every step takes the tensor-op reference path).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cube_kernels)");
    let wgpu = std::env::var_os("CARGO_FEATURE_WGPU").is_some();
    let fusion = std::env::var_os("CARGO_FEATURE_FUSION").is_some();
    if wgpu && !fusion {
        println!("cargo::rustc-cfg=cube_kernels");
    }
}
