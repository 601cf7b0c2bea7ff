//! The data a network sees: labelled images of one shape and where they came from
//! ([`dataset`]); Fashion-MNIST found, downloaded if need be, read from its IDX files and
//! checked ([`fashion_mnist`]); folders of the user's own labelled pictures ([`folder`], and
//! [`folder_write`] writing a data set as one); images
//! of any size and channel count for imported models ([`images`]: IDX or PNG folders); single
//! picture files as a model's input ([`picture`]); and the progress bars every long stage shows
//! ([`progress`]).

pub mod dataset;
pub mod fashion_mnist;
pub mod folder;
pub mod folder_write;
pub mod images;
pub mod picture;
pub mod progress;

pub use dataset::{DataSource, Dataset, FolderSpec, Split};
pub use fashion_mnist::{
    CLASS_NAMES, CLASSES, DataError, ENV_DIR, FashionMnist, IdxFile, Normalization, OFFICIAL_URL,
    PIXELS, SIDE, candidate_dirs, fashion_mnist_classes, fashion_mnist_split, find_file,
    is_fashion_mnist_classes, locate, locate_or_download,
};
pub use folder::{FolderReport, load_folder};
pub use images::{ImageSet, Images};
