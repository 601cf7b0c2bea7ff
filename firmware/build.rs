//! Build script: picks the board's memory map, embeds the model blob and sizes the arena from it.
//!
//! * `SQZ_BLOB` — path of the model blob to embed; a relative path is relative to `firmware/`
//!   (default `../models/shipped.blob`). The build fails if it is missing or does not validate.
//! * Emits `$OUT_DIR/model.blob` (the bytes `include_bytes!` embeds), `$OUT_DIR/model_config.rs`
//!   (`ARENA_LEN`, `INPUT_LEN`, `NUM_CLASSES`, `BLOB_LEN`, `MODEL_ID`) and `$OUT_DIR/memory.x`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

const DEFAULT_BLOB: &str = "../models/shipped.blob";
const BOARDS: &[&str] = &["mps2-an386", "mps2-an385", "nucleo-f411re"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());

    // Exactly one board.
    let boards: Vec<&str> = BOARDS
        .iter()
        .copied()
        .filter(|b| {
            env::var_os(format!(
                "CARGO_FEATURE_{}",
                b.to_uppercase().replace('-', "_")
            ))
            .is_some()
        })
        .collect();
    let board = match boards[..] {
        [b] => b,
        [] => fail(&format!(
            "no board selected: enable one of the features {BOARDS:?}"
        )),
        _ => fail(&format!(
            "boards {boards:?} selected together: use `--no-default-features --features <board>` for a board other than the default"
        )),
    };
    let memory = manifest.join("boards").join(format!("{board}.x"));
    fs::copy(&memory, out.join("memory.x"))
        .unwrap_or_else(|e| fail(&format!("reading {}: {e}", memory.display())));
    println!("cargo:rerun-if-changed={}", memory.display());
    println!("cargo:rustc-link-search={}", out.display());
    // cortex-m-rt's `device` feature includes a `device.x` naming the interrupt handlers. The
    // MPS2 boards' one-entry table names none; the Nucleo's comes with its PAC (not shadowed).
    if board.starts_with("mps2") {
        fs::write(out.join("device.x"), "/* no device interrupt handlers */\n").unwrap();
    } else {
        let _ = fs::remove_file(out.join("device.x"));
    }

    // Thumb-2 targets (ARMv7-M, ARMv8-M mainline) take the firmware's own memcpy/memset (mem.s).
    println!("cargo::rustc-check-cfg=cfg(sqz_fw_thumb2)");
    let target = env::var("TARGET").unwrap();
    if target.starts_with("thumbv7") || target.starts_with("thumbv8m.main") {
        println!("cargo:rustc-cfg=sqz_fw_thumb2");
    }

    // flip-link is the configured linker (.cargo/config.toml) unless overridden: say so clearly.
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        env::var("TARGET").unwrap().to_uppercase().replace('-', "_")
    );
    println!("cargo:rerun-if-env-changed={linker_var}");
    if env::var_os(&linker_var).is_none() && !on_path("flip-link") {
        fail(&format!(
            "flip-link not found: `cargo install flip-link` (it links the stack below the statics so an overflow \
             faults instead of corrupting memory). To build without that protection: \
             {linker_var}=rust-lld cargo build ..."
        ));
    }

    // The blob.
    println!("cargo:rerun-if-env-changed=SQZ_BLOB");
    let blob_path = match env::var("SQZ_BLOB") {
        Ok(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
        Ok(p) => manifest.join(p), // relative to firmware/, wherever cargo was started
        Err(_) => manifest.join(DEFAULT_BLOB),
    };
    println!("cargo:rerun-if-changed={}", blob_path.display());
    let blob = fs::read(&blob_path).unwrap_or_else(|e| {
        fail(&format!(
            "cannot read the model blob {}: {e}\n  set SQZ_BLOB=/path/to/model.blob, or put the shipped model at firmware/{DEFAULT_BLOB}",
            blob_path.display()
        ))
    });
    let model = shared::Model::from_bytes(&blob).unwrap_or_else(|e| {
        fail(&format!(
            "the model blob {} does not validate: {e}",
            blob_path.display()
        ))
    });
    let input_len = model.input_len();
    fs::write(out.join("model.blob"), &blob).unwrap();
    fs::write(
        out.join("model_config.rs"),
        format!(
            "/// Source of the embedded blob, at build time.\n\
             pub const BLOB_PATH: &str = {path:?};\n\
             /// Embedded blob length, bytes.\n\
             pub const BLOB_LEN: usize = {blob_len};\n\
             /// Arena bytes the embedded model needs (from the blob, at build time).\n\
             pub const ARENA_LEN: usize = {arena};\n\
             /// Input elements (h * w * c).\n\
             pub const INPUT_LEN: usize = {input_len};\n\
             /// Logits per inference.\n\
             pub const NUM_CLASSES: usize = {classes};\n\
             /// Model id of the embedded blob.\n\
             pub const MODEL_ID: u64 = {id:#x};\n\n{caps}",
            path = blob_path.display().to_string(),
            blob_len = blob.len(),
            arena = model.arena_len(),
            classes = model.num_classes(),
            id = model.model_id(),
            caps = build_caps(&model).rust_impl("BlobCaps"),
        ),
    )
    .unwrap();
    println!(
        "cargo:warning=sqz-firmware: board {board}, blob {} ({} B, arena {} B)",
        blob_path.display(),
        blob.len(),
        model.arena_len()
    );
}

/// What the build carries: the blob's decoders and layer kinds; the Cortex-M4 stem kernels
/// only with the `stem-kernels` feature (3.9 KB of flash for about 1 M instructions per
/// inference on the shipped model; without them the general drivers run the stem).
fn build_caps(model: &shared::Model<'_>) -> shared::caps::Used {
    let mut used = model.uses();
    if env::var_os("CARGO_FEATURE_STEM_KERNELS").is_none() {
        used.stem_dense = false;
        used.stem_sparse = false;
    }
    used
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}
