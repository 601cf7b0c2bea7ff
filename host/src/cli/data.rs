//! `sqz data`, and where every command's Fashion-MNIST comes from (`--data`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::data::{CLASS_NAMES, FashionMnist};

/// Where Fashion-MNIST comes from.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Directory with the four IDX files (gzipped or not). Default: $FASHION_MNIST_DIR,
    /// then data/fashion-mnist, then ../shared/data/fashion-mnist, then a verified download.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    pub(super) fn load(&self) -> Result<FashionMnist> {
        let d = FashionMnist::load(self.data.as_deref())?;
        eprintln!(
            "data: {} ({} train, {} test)",
            d.dir.display(),
            d.train.len(),
            d.test.len()
        );
        Ok(d)
    }
}

/// `sqz data`: finds, verifies and summarises the data set.
pub fn data(args: DataArgs) -> Result<()> {
    let d = args.load()?;
    for (name, split) in [("train", &d.train), ("test", &d.test)] {
        println!("{name}: {} images", split.len());
        for (c, n) in split.class_counts().iter().enumerate() {
            println!("  {c} {:<12} {n}", CLASS_NAMES[c]);
        }
    }
    Ok(())
}
