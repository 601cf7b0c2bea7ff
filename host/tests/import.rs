//! `sqz import` on ONNX models these tests write themselves (tract's prost types), with shapes
//! unlike the shipped model's (1x28x28, 10 classes, 3x3/1 stem of 64): torchvision-style v1.1
//! on 3x40x40 with 7 classes, v1.0-style with simple and complex bypasses, a tf2onnx-like NHWC
//! export, and an unsupported op.

use std::path::Path;
use std::process::Command;

use host::data::images::{ImageSet, Images};
use host::verify::import::{ImportConfig, import, parse, write_outputs};
use prost::Message;
use tract_onnx::pb::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    ValueInfoProto,
};

/// A graph written the way exporters write it, with random weights.
struct G {
    graph: GraphProto,
    n: usize,
    seed: u64,
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

impl G {
    fn new(seed: u64) -> Self {
        G {
            graph: GraphProto::default(),
            n: 0,
            seed,
        }
    }

    fn uniform(&mut self) -> f32 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn init_f32(&mut self, hint: &str, dims: &[i64], v: &[f32]) -> String {
        self.n += 1;
        let name = format!("{hint}.{}", self.n);
        self.graph.initializer.push(TensorProto {
            name: name.clone(),
            dims: dims.to_vec(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    fn init_i64(&mut self, hint: &str, dims: &[i64], v: &[i64]) -> String {
        self.n += 1;
        let name = format!("{hint}.{}", self.n);
        self.graph.initializer.push(TensorProto {
            name: name.clone(),
            dims: dims.to_vec(),
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: v.to_vec(),
            ..Default::default()
        });
        name
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.n += 1;
        let out = format!("t{}", self.n);
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("/{op}_{}", self.n),
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    fn rand(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform() * scale).collect()
    }

    /// Conv with He-uniform weights; `attrs` gives pads / auto_pad.
    #[allow(clippy::too_many_arguments)]
    fn conv_attrs(
        &mut self,
        x: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        mut attrs: Vec<AttributeProto>,
        bias: bool,
    ) -> String {
        let fan = (cin * k * k) as f32;
        let w = self.rand(cout * cin * k * k, (6.0 / fan).sqrt());
        let k = k as i64;
        let wn = self.init_f32("weight", &[cout as i64, cin as i64, k, k], &w);
        let mut inputs = vec![x.to_string(), wn];
        if bias {
            let b = self.rand(cout, 0.1);
            inputs.push(self.init_f32("bias", &[cout as i64], &b));
        }
        attrs.push(ints("kernel_shape", &[k, k]));
        attrs.push(ints("strides", &[stride as i64, stride as i64]));
        let refs: Vec<&str> = inputs.iter().map(|s| s.as_str()).collect();
        self.node("Conv", &refs, attrs)
    }

    fn conv(
        &mut self,
        x: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: i64,
    ) -> String {
        self.conv_attrs(x, cin, cout, k, stride, vec![ints("pads", &[pad; 4])], true)
    }

    fn bn(&mut self, x: &str, c: usize) -> String {
        let gamma: Vec<f32> = self.rand(c, 0.3).iter().map(|v| 1.0 + v).collect();
        let beta = self.rand(c, 0.2);
        let mean = self.rand(c, 0.3);
        let var: Vec<f32> = self.rand(c, 0.5).iter().map(|v| 1.0 + v).collect();
        let d = [c as i64];
        let ins = [
            x.to_string(),
            self.init_f32("bn.weight", &d, &gamma),
            self.init_f32("bn.bias", &d, &beta),
            self.init_f32("bn.running_mean", &d, &mean),
            self.init_f32("bn.running_var", &d, &var),
        ];
        let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        let eps = AttributeProto {
            name: "epsilon".into(),
            r#type: pb::attribute_proto::AttributeType::Float as i32,
            f: 1e-5,
            ..Default::default()
        };
        self.node("BatchNormalization", &refs, vec![eps])
    }

    fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    /// Conv (+ BN) + ReLU.
    fn cbr(&mut self, x: &str, cin: usize, cout: usize, k: usize, pad: i64, bn: bool) -> String {
        let c = self.conv(x, cin, cout, k, 1, pad);
        let c = if bn { self.bn(&c, cout) } else { c };
        self.relu(&c)
    }

    /// torchvision's Fire: squeeze, expand1x1, expand3x3, Concat.
    fn fire(&mut self, x: &str, cin: usize, s: usize, e1: usize, e3: usize, bn: bool) -> String {
        let sq = self.cbr(x, cin, s, 1, 0, bn);
        let a = self.cbr(&sq, s, e1, 1, 0, bn);
        let b = self.cbr(&sq, s, e3, 3, 1, bn);
        self.node("Concat", &[&a, &b], vec![int("axis", 1)])
    }

    fn maxpool(&mut self, x: &str, k: i64, s: i64, pad: i64, ceil: bool) -> String {
        let mut a = vec![ints("kernel_shape", &[k, k]), ints("strides", &[s, s])];
        if pad > 0 {
            a.push(ints("pads", &[pad; 4]));
        }
        if ceil {
            a.push(int("ceil_mode", 1));
        }
        self.node("MaxPool", &[x], a)
    }

    fn finish(mut self, input: ValueInfoProto, output: &str, opset: i64) -> Vec<u8> {
        self.graph.name = "test".into();
        self.graph.input.push(input);
        self.graph.output.push(ValueInfoProto {
            name: output.into(),
            ..Default::default()
        });
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            producer_name: "sqz-tests".into(),
            graph: Some(self.graph),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

fn input(name: &str, dims: [Option<i64>; 4]) -> ValueInfoProto {
    host::export::onnx::value_info(name, pb::tensor_proto::DataType::Float, &dims)
}

/// Synthetic images: smooth blobs and stripes, different per image, with labels.
fn images(n: usize, c: usize, side: usize, classes: u8) -> ImageSet {
    let mut pixels = Vec::with_capacity(n * c * side * side);
    for i in 0..n {
        for y in 0..side {
            for x in 0..side {
                for ch in 0..c {
                    let f = (x as f32 * (0.2 + 0.05 * (i % 7) as f32)
                        + y as f32 * (0.1 + 0.03 * ch as f32)
                        + i as f32)
                        .sin();
                    let g = ((x * y + i * 13 + ch * 7) % 17) as f32 / 17.0;
                    pixels.push((127.5 + 100.0 * f + 27.0 * g).clamp(0.0, 255.0) as u8);
                }
            }
        }
    }
    ImageSet {
        c,
        h: side,
        w: side,
        pixels,
        labels: Some((0..n).map(|i| (i % classes as usize) as u8).collect()),
    }
}

fn check(onnx: &[u8], name: &str, set: &ImageSet) -> host::verify::import::ImportResult {
    let cfg = ImportConfig {
        calib_images: 200,
        layer_images: 4,
        images: 60,
        float_images: 8,
        ..Default::default()
    };
    let r = import(onnx, name, set, &cfg).unwrap_or_else(|e| panic!("{e:#}"));
    let md = &r.report.markdown;
    eprintln!("{md}");
    let bad: usize = r.report.layers.iter().map(|l| l.mismatches).sum();
    assert_eq!(bad, 0, "{md}");
    assert_eq!(r.report.network.top1_agree, r.report.network.images, "{md}");
    let f = r.report.float.as_ref().expect("float check");
    assert!(f.images > 0, "{md}");
    assert!(r.report.passed, "{md}");
    r
}

/// torchvision `squeezenet1_1` shape, narrowed: 3x40x40 input, 7 classes, BatchNorm after every
/// conv, Dropout, Flatten, Softmax, MaxPool ceil_mode; calibrated from a 4-dim IDX file.
fn v11_model() -> Vec<u8> {
    let mut g = G::new(0x5eed_1111);
    let x = g.conv("input", 3, 16, 3, 2, 0);
    let x = g.bn(&x, 16);
    let x = g.relu(&x);
    let x = g.maxpool(&x, 3, 2, 0, true);
    let x = g.fire(&x, 16, 4, 8, 8, true);
    let x = g.fire(&x, 16, 4, 8, 8, true);
    let x = g.maxpool(&x, 3, 2, 0, true);
    let x = g.fire(&x, 16, 6, 12, 12, true);
    let x = g.maxpool(&x, 3, 2, 0, true);
    let x = g.fire(&x, 24, 8, 16, 16, true);
    let x = g.node("Dropout", &[&x], vec![]);
    let x = g.conv(&x, 32, 7, 1, 1, 0);
    let x = g.relu(&x);
    let x = g.node("GlobalAveragePool", &[&x], vec![]);
    let x = g.node("Flatten", &[&x], vec![int("axis", 1)]);
    let y = g.node("Softmax", &[&x], vec![int("axis", 1)]);
    g.finish(input("input", [None, Some(3), Some(40), Some(40)]), &y, 13)
}

#[test]
fn torchvision_v11_three_channels_seven_classes() {
    let onnx = v11_model();
    let imp = parse(&onnx, None).unwrap();
    assert_eq!(imp.net.in_channels, 3);
    assert_eq!(imp.net.input_size, 40);
    assert_eq!(imp.logits_count(), 7);
    assert!(!imp.nhwc);
    // The logits are taken before the Softmax: the Flatten's output.
    let m = ModelProto::decode(&onnx[..]).unwrap();
    let flatten = m
        .graph
        .unwrap()
        .node
        .into_iter()
        .find(|n| n.op_type == "Flatten");
    assert_eq!(imp.logits, flatten.unwrap().output[0]);
    let dir = tempfile::tempdir().unwrap();
    let set = images(120, 3, 40, 7);
    let (idx, labels) = host::data::images::to_idx(&set);
    let ip = dir.path().join("calib-images-idx4-ubyte");
    let lp = dir.path().join("calib-labels-idx1-ubyte");
    std::fs::write(&ip, idx).unwrap();
    std::fs::write(&lp, labels.unwrap()).unwrap();
    let loaded = ImageSet::load(&ip, Some(&lp)).unwrap();
    assert_eq!(loaded, set);
    let r = check(&onnx, "v11.onnx", &loaded);
    assert!(
        r.report.markdown.contains("fire 4->8+8"),
        "{}",
        r.report.markdown
    );
    let out = dir.path().join("out/v11.blob");
    let files = write_outputs(&out, &r).unwrap();
    assert_eq!(std::fs::read(&files[0]).unwrap(), r.blob);
    assert!(files[1].ends_with("v11.report.md"));
    let model = shared::Model::from_bytes(&r.blob).unwrap();
    assert_eq!(model.num_classes(), 7);
    // Nothing but the two outputs in the folder.
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        2
    );
}

/// v1.0 shape: 7x7/2 stem, padded floor-mode max pool, a simple and a complex bypass, the
/// final AveragePool covering the map, and a Reshape whose shape is computed (Shape, Gather,
/// Unsqueeze, Concat) as old PyTorch exports do; 1x36x36 input, 5 classes, grey PNGs,
/// through the `sqz` binary.
fn v10_model() -> Vec<u8> {
    let mut g = G::new(0x5eed_1010);
    let x = g.conv("x", 1, 24, 7, 2, 0); // 36 -> 15
    let x = g.relu(&x);
    let x = g.maxpool(&x, 3, 2, 1, false); // 15 -> 8
    let f2 = g.fire(&x, 24, 6, 16, 16, false);
    let f3 = g.fire(&f2, 32, 6, 16, 16, false);
    let f3 = g.node("Add", &[&f3, &f2], vec![]); // simple bypass
    let f4 = g.fire(&f3, 32, 8, 24, 24, false);
    let by = g.conv(&f3, 32, 48, 1, 1, 0); // complex bypass, no ReLU
    let x = g.node("Add", &[&f4, &by], vec![]);
    let x = g.maxpool(&x, 3, 2, 0, true); // 8 -> 4
    let x = g.node("Dropout", &[&x], vec![]);
    let x = g.conv(&x, 48, 5, 1, 1, 0);
    let x = g.relu(&x);
    let x = g.node(
        "AveragePool",
        &[&x],
        vec![ints("kernel_shape", &[4, 4]), ints("strides", &[1, 1])],
    );
    let shape = g.node("Shape", &[&x], vec![]);
    let zero = g.init_i64("zero", &[], &[0]);
    let n = g.node("Gather", &[&shape, &zero], vec![int("axis", 0)]);
    let n = g.node("Unsqueeze", &[&n], vec![ints("axes", &[0])]);
    let minus1 = g.init_i64("minus_one", &[1], &[-1]);
    let s = g.node("Concat", &[&n, &minus1], vec![int("axis", 0)]);
    let y = g.node("Reshape", &[&x, &s], vec![]);
    g.finish(input("x", [None, Some(1), Some(36), Some(36)]), &y, 11)
}

/// `sqz import MODEL --calib PNGS --out OUT` with `[calib, layer, float]` image counts; asserts
/// success and a passing report, returns stdout.
fn import_cli(model: &Path, pngs: &Path, out: &Path, counts: [&str; 3]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_sqz"))
        .arg("import")
        .arg(model)
        .arg("--calib")
        .arg(pngs)
        .arg("--out")
        .arg(out)
        .args(["--calib-images", counts[0], "--layer-images", counts[1]])
        .args(["--float-images", counts[2]])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("Result: PASS"), "{stdout}");
    stdout
}

#[test]
fn v10_simple_and_complex_bypass_png_folder_through_the_cli() {
    let onnx = v10_model();
    let imp = parse(&onnx, None).unwrap();
    let bypasses: Vec<_> = imp
        .net
        .layers
        .iter()
        .filter_map(|l| match l {
            host::compress::fold::FloatLayer::Fire { bypass, .. } => Some(bypass.clone()),
            _ => None,
        })
        .collect();
    assert!(matches!(
        bypasses[0],
        host::compress::fold::FloatBypass::None
    ));
    assert!(matches!(
        bypasses[1],
        host::compress::fold::FloatBypass::Identity
    ));
    assert!(matches!(
        bypasses[2],
        host::compress::fold::FloatBypass::Conv(_)
    ));
    assert!(matches!(
        imp.net.layers.last(),
        Some(host::compress::fold::FloatLayer::GlobalAvgPool)
    ));
    let dir = tempfile::tempdir().unwrap();
    let set = images(60, 1, 36, 5);
    let pngs = dir.path().join("pngs");
    host::data::images::write_png_dir(&set, &pngs).unwrap();
    let loaded = ImageSet::load(&pngs, None).unwrap();
    assert_eq!(loaded.pixels, set.pixels);
    assert!(loaded.labels.is_none());
    check(&onnx, "v10.onnx", &loaded);

    let model = dir.path().join("v10.onnx");
    std::fs::write(&model, &onnx).unwrap();
    let out = dir.path().join("v10.blob");
    let stdout = import_cli(&model, &pngs, &out, ["60", "3", "5"]);
    assert!(stdout.contains("n/a (no labels)"), "{stdout}");
    assert!(out.exists() && dir.path().join("v10.report.md").exists());
}

/// tf2onnx-like: NHWC input with a leading Transpose, `auto_pad` VALID / SAME_UPPER, a Keras
/// BatchNorm exported as Mul + Add of constants, ReduceMean over H and W as the global pool,
/// Softmax; 3x32x32 input, 4 classes.
#[test]
fn tf2onnx_like_nhwc_export() {
    let mut g = G::new(0x5eed_07f2);
    let x = g.node(
        "Transpose",
        &["input_1:0"],
        vec![ints("perm", &[0, 3, 1, 2])],
    );
    let x = g.conv_attrs(&x, 3, 16, 3, 2, vec![string("auto_pad", "VALID")], false); // 32 -> 15
    let s = g.rand(16, 0.3).iter().map(|v| 1.0 + v).collect::<Vec<_>>();
    let s = g.init_f32("bn_mul", &[1, 16, 1, 1], &s);
    let x = g.node("Mul", &[&x, &s], vec![]);
    let b = g.rand(16, 0.2);
    let b = g.init_f32("bn_add", &[1, 16, 1, 1], &b);
    let x = g.node("Add", &[&x, &b], vec![]);
    let x = g.relu(&x);
    let x = g.node(
        "MaxPool",
        &[&x],
        vec![
            ints("kernel_shape", &[3, 3]),
            ints("strides", &[2, 2]),
            string("auto_pad", "VALID"),
        ],
    ); // 15 -> 7
    let sq = g.conv_attrs(&x, 16, 4, 1, 1, vec![string("auto_pad", "VALID")], true);
    let sq = g.relu(&sq);
    let e1 = g.conv_attrs(&sq, 4, 12, 1, 1, vec![string("auto_pad", "VALID")], true);
    let e1 = g.relu(&e1);
    let e3 = g.conv_attrs(
        &sq,
        4,
        12,
        3,
        1,
        vec![string("auto_pad", "SAME_UPPER")],
        true,
    );
    let e3 = g.relu(&e3);
    let x = g.node("Concat", &[&e1, &e3], vec![int("axis", -3)]);
    let x = g.conv_attrs(&x, 24, 4, 1, 1, vec![string("auto_pad", "VALID")], true);
    let x = g.node(
        "ReduceMean",
        &[&x],
        vec![ints("axes", &[2, 3]), int("keepdims", 0)],
    );
    let y = g.node("Softmax", &[&x], vec![int("axis", -1)]);
    let onnx = g.finish(
        input("input_1:0", [None, Some(32), Some(32), Some(3)]),
        &y,
        13,
    );
    let imp = parse(&onnx, None).unwrap();
    assert!(imp.nhwc);
    assert_eq!((imp.net.in_channels, imp.net.input_size), (3, 32));
    check(&onnx, "tf2onnx.onnx", &images(80, 3, 32, 4));
}

/// A symbolic input size needs --input-size; with it the model imports.
#[test]
fn symbolic_input_size_needs_the_flag() {
    let mut g = G::new(0x5eed_0005);
    let x = g.conv("in", 2, 8, 3, 1, 1);
    let x = g.relu(&x);
    let x = g.fire(&x, 8, 4, 8, 8, false);
    let x = g.conv(&x, 16, 3, 1, 1, 0);
    let y = g.node("GlobalAveragePool", &[&x], vec![]);
    let onnx = g.finish(input("in", [None, Some(2), None, None]), &y, 17);
    let e = parse(&onnx, None).unwrap_err().to_string();
    assert!(e.contains("--input-size"), "{e}");
    let imp = parse(&onnx, Some(12)).unwrap();
    assert_eq!(imp.net.input_size, 12);
    // The classifier has no ReLU here.
    assert!(!imp.net.convs().last().unwrap().relu);
    let cfg = ImportConfig {
        input_size: Some(12),
        calib_images: 50,
        layer_images: 3,
        images: 50,
        float_images: 5,
        ..Default::default()
    };
    let r = import(&onnx, "sym.onnx", &images(50, 2, 12, 3), &cfg).unwrap();
    assert!(r.report.passed, "{}", r.report.markdown);
}

/// An unsupported op: one error naming the node and the op, and nothing written.
#[test]
fn unsupported_op_is_named_and_nothing_is_written() {
    let mut g = G::new(0x5eed_0bad);
    let x = g.conv("input", 1, 8, 3, 1, 1);
    let x = g.relu(&x);
    let x = g.conv(&x, 8, 4, 1, 1, 0);
    let x = g.node("Sigmoid", &[&x], vec![]);
    let y = g.node("GlobalAveragePool", &[&x], vec![]);
    let onnx = g.finish(
        input("input", [Some(1), Some(1), Some(16), Some(16)]),
        &y,
        13,
    );
    let node = g_name_of(&onnx, "Sigmoid");
    let e = format!("{:#}", parse(&onnx, None).unwrap_err());
    assert!(e.contains(&node) && e.contains("Sigmoid"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bad.onnx");
    std::fs::write(&model, &onnx).unwrap();
    let calib = dir.path().join("calib-idx3-ubyte");
    std::fs::write(&calib, host::data::images::to_idx(&images(10, 1, 16, 4)).0).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_sqz"))
        .args(["import", model.to_str().unwrap(), "--calib"])
        .arg(&calib)
        .arg("--out")
        .arg(out.join("bad.blob"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains(&node) && stderr.contains("op Sigmoid"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing may be written");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// Images of the wrong size are refused with the sizes named.
#[test]
fn wrong_image_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let set = images(4, 1, 20, 2);
    let p = dir.path().join("imgs");
    std::fs::write(&p, host::data::images::to_idx(&set).0).unwrap();
    let loaded = ImageSet::load(&p, None).unwrap();
    assert_eq!(loaded.count(), 4);
    let e = loaded
        .check_shape(3, 40, Path::new("imgs"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("20x20") && e.contains("40x40"), "{e}");
}

fn g_name_of(onnx: &[u8], op: &str) -> String {
    let m = ModelProto::decode(onnx).unwrap();
    m.graph
        .unwrap()
        .node
        .into_iter()
        .find(|n| n.op_type == op)
        .unwrap()
        .name
}

/// The generalised pool and input conversion reproduce the shipped model's exactly (its blob
/// must stay byte-identical): SqueezeNet's 3x3/2 ceil geometry and 1x28x28 [0, 1] inputs.
#[test]
fn generalised_pool_and_input_match_the_shipped_path() {
    use host::compress::fold::{FloatNet, PoolGeom};
    for s in 3..200 {
        assert_eq!(
            PoolGeom::SQUEEZENET.out_size(s),
            Some(host::train::model::pool_out(s)),
            "side {s}"
        );
    }
    let net = FloatNet {
        in_channels: 1,
        input_size: 28,
        layers: vec![],
    };
    let px: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
    let unit: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
    assert_eq!(host::compress::quantize::net_input(&net, &px).v, unit);
    // RGB: HWC pixels become CHW planes.
    let rgb = FloatNet {
        in_channels: 3,
        input_size: 2,
        layers: vec![],
    };
    let px: Vec<u8> = (0..12).map(|i| i * 20).collect();
    let planes: Vec<f32> = [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
        .iter()
        .map(|&i| f32::from(px[i]) / 255.0)
        .collect();
    assert_eq!(host::compress::quantize::net_input(&rgb, &px).v, planes);
}

/// Moves the initializers of `onnx` larger than `threshold` bytes into `dir/data_name`, one
/// after the other, each at a 16-byte aligned offset, as onnx's `save_as_external_data` and
/// `torch.onnx.export` (PyTorch 2.9 and later) write them; writes `dir/model.onnx`.
fn write_external(
    onnx: &[u8],
    dir: &Path,
    data_name: &str,
    threshold: usize,
) -> std::path::PathBuf {
    let mut m = ModelProto::decode(onnx).unwrap();
    let mut data = Vec::new();
    for t in &mut m.graph.as_mut().unwrap().initializer {
        if t.raw_data.len() <= threshold {
            continue;
        }
        data.resize(data.len().next_multiple_of(16), 0);
        let entry = |key: &str, value: String| pb::StringStringEntryProto {
            key: key.into(),
            value,
        };
        t.external_data = vec![
            entry("location", data_name.into()),
            entry("offset", data.len().to_string()),
            entry("length", t.raw_data.len().to_string()),
        ];
        t.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
        data.extend(std::mem::take(&mut t.raw_data));
    }
    std::fs::write(dir.join(data_name), data).unwrap();
    let path = dir.join("model.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    path
}

#[test]
fn external_data_beside_the_model_imports_as_the_same_model() {
    let onnx = v11_model();
    let dir = tempfile::tempdir().unwrap();
    let path = write_external(&onnx, dir.path(), "model.onnx.data", 64);
    let stored = std::fs::read(&path).unwrap();
    // Mixed, as exporters write it: the large tensors outside, the small ones inside.
    let inits = ModelProto::decode(&stored[..])
        .unwrap()
        .graph
        .unwrap()
        .initializer;
    let outside = inits.iter().filter(|t| !t.external_data.is_empty()).count();
    assert!(
        outside > 10 && outside < inits.len(),
        "{outside} of {}",
        inits.len()
    );
    // The importer on the bytes alone names the problem.
    let err = format!("{:#}", parse(&stored, None).unwrap_err());
    assert!(err.contains("external data"), "{err}");
    // Read with its folder: the same model, the same blob.
    let read = host::verify::import::read_model(&path).unwrap();
    assert_eq!(
        ModelProto::decode(&read[..]).unwrap(),
        ModelProto::decode(&onnx[..]).unwrap()
    );
    let set = images(60, 3, 40, 7);
    assert_eq!(
        check(&read, "ext.onnx", &set).blob,
        check(&onnx, "v11.onnx", &set).blob
    );
}

#[test]
fn external_data_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_external(&v10_model(), dir.path(), "model.onnx.data", 0);
    let pngs = dir.path().join("pngs");
    host::data::images::write_png_dir(&images(30, 1, 36, 5), &pngs).unwrap();
    // `import_cli` asserts success and a passing report.
    import_cli(
        &model,
        &pngs,
        &dir.path().join("v10.blob"),
        ["30", "2", "3"],
    );
}

#[test]
fn external_data_outside_the_folder_or_the_file_is_refused() {
    let onnx = v10_model();
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("model");
    std::fs::create_dir(&inner).unwrap();
    let path = write_external(&onnx, &inner, "w.data", 0);
    let reason = |m: &ModelProto| {
        std::fs::write(&path, m.encode_to_vec()).unwrap();
        format!("{:#}", host::verify::import::read_model(&path).unwrap_err())
    };
    let base = ModelProto::decode(&std::fs::read(&path).unwrap()[..]).unwrap();
    let with = |f: &dyn Fn(&mut Vec<pb::StringStringEntryProto>)| {
        let mut m = base.clone();
        f(&mut m.graph.as_mut().unwrap().initializer[0].external_data);
        m
    };
    let set = |key: &'static str, value: String| {
        move |e: &mut Vec<pb::StringStringEntryProto>| {
            e.iter_mut().find(|x| x.key == key).unwrap().value = value.clone()
        }
    };
    // A file beside the model's folder, reached with `..` or an absolute path.
    std::fs::copy(inner.join("w.data"), dir.path().join("w.data")).unwrap();
    let abs = dir.path().join("w.data").display().to_string();
    for location in ["../w.data".to_string(), abs] {
        let err = reason(&with(&set("location", location.clone())));
        assert!(
            err.contains("not inside the model's folder"),
            "{location}: {err}"
        );
    }
    // A link out of the folder.
    std::os::unix::fs::symlink(dir.path().join("w.data"), inner.join("link.data")).unwrap();
    let err = reason(&with(&set("location", "link.data".into())));
    assert!(err.contains("link out of the model's folder"), "{err}");
    // Past the end of the file, and a file that is not there.
    let len = std::fs::metadata(inner.join("w.data")).unwrap().len();
    let err = reason(&with(&set("offset", (len - 2).to_string())));
    assert!(
        err.contains(&format!("the file holds {len} bytes")),
        "{err}"
    );
    let err = reason(&with(&set("location", "missing.data".into())));
    assert!(
        err.contains("cannot open its external data file") && err.contains("missing.data"),
        "{err}"
    );
    let err = reason(&with(&set("length", "many".into())));
    assert!(err.contains("is not a byte count"), "{err}");
}
