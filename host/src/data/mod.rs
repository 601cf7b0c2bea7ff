//! The data a network sees: Fashion-MNIST found, downloaded if need be, read from its IDX files
//! and checked ([`fashion_mnist`]); images of any size and channel count for imported models
//! ([`images`]: IDX or PNG folders); single picture files as a model's input ([`picture`]);
//! and the progress bars every long stage shows ([`progress`]).

pub mod fashion_mnist;
pub mod images;
pub mod picture;
pub mod progress;

pub use fashion_mnist::{
    CLASS_NAMES, CLASSES, DataError, ENV_DIR, FashionMnist, IdxFile, Normalization, OFFICIAL_URL,
    PIXELS, SIDE, Split, candidate_dirs, find_file, locate, locate_or_download,
};
pub use images::{ImageSet, Images};
