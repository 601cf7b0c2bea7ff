//! Enables the Cortex-M DSP (`SMLAD`/`SXTB16`) kernels on targets that have them. The ARM
//! `dsp` target feature is not visible to `cfg` on stable Rust, so the target name decides.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(sqz_dsp)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main") {
        println!("cargo::rustc-cfg=sqz_dsp");
    }
}
