//! Whole-network inference on one thread: the shipped blob on the `shared` kernels (host
//! portable path) against tract 0.23.9 running the same network as float ONNX
//! (`models/shipped.float.onnx`), one 28x28 image per call, in the same run.
//!
//! ```text
//! cargo bench -p sqz-host --bench inference
//! ```
//! Results: `models/BENCHMARKS.md`.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tract_onnx::prelude::*;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

fn bench(c: &mut Criterion) {
    let data = host::data::FashionMnist::load(None).expect("Fashion-MNIST");
    let image = data.test.image(0).to_vec();
    let blob = std::fs::read(models().join("shipped.blob")).expect("models/shipped.blob");
    let model = shared::Model::from_bytes(&blob).expect("valid blob");
    let mut arena = vec![0u8; model.arena_len()];
    let mut input = vec![0i8; model.input_len()];
    let mut logits = vec![0i8; model.num_classes()];

    let onnx = std::fs::read(models().join("shipped.float.onnx")).expect("float ONNX");
    let plan = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .model_for_read(&mut &onnx[..])
        .and_then(|m| {
            m.with_input_fact(
                0,
                InferenceFact::dt_shape(f32::datum_type(), tvec![1, 1, 28, 28]),
            )
        })
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("tract loads the float ONNX");
    let x: Vec<f32> = image.iter().map(|&p| f32::from(p) / 255.0).collect();
    let tensor = Tensor::from_shape(&[1, 1, 28, 28], &x).expect("tensor");

    let mut g = c.benchmark_group("inference_28x28");
    g.throughput(Throughput::Elements(1));
    g.bench_function("shared int8 (shipped blob)", |b| {
        b.iter(|| {
            shared::quantize_input_u8(&model, &image, &mut input);
            shared::run(&model, &input, &mut arena, &mut logits);
            logits[0]
        })
    });
    // The same with a larger arena (the layer-by-layer size): the spare bytes become kernel
    // scratch, i.e. larger weight blocks where the exact arena is tight.
    let mut roomy = vec![0u8; model.observed_arena_len()];
    g.bench_function("shared int8 (shipped blob, roomy arena)", |b| {
        b.iter(|| {
            shared::quantize_input_u8(&model, &image, &mut input);
            shared::run(&model, &input, &mut roomy, &mut logits);
            logits[0]
        })
    });
    g.bench_function("tract 0.23.9 float ONNX", |b| {
        b.iter(|| plan.run(tvec!(tensor.clone().into())).expect("tract run"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
