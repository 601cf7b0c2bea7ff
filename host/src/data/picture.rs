//! Single picture files as a model's input: any format the `image` crate decodes (PNG, JPEG,
//! BMP, GIF, TIFF, WebP), converted to the model's channels (grey: ITU-R BT.709 luma, as
//! `image` computes it; RGB) and resized to its input with a triangle (bilinear) filter when the
//! size differs. The result is `h x w x c` u8 pixels, row-major HWC: what training feeds the
//! network (`pixel / 255`) and what the blob's input quantisation expects.

use std::path::Path;

use anyhow::{Context, Result, bail};
use image::DynamicImage;
use image::imageops::FilterType;

/// The resize filter, for reports.
pub const RESIZE_FILTER: &str = "triangle (bilinear)";

/// Reads `path` as `h x w x c` pixels (`c` 1 or 3).
pub fn load_picture(path: &Path, h: usize, w: usize, c: usize) -> Result<Vec<u8>> {
    to_model_input(decode_picture(path)?, h, w, c)
}

/// Decodes `path`, whatever its format; the error names the file and the formats understood.
pub fn decode_picture(path: &Path) -> Result<DynamicImage> {
    image::ImageReader::open(path)
        .with_context(|| format!("while opening {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("while reading {}", path.display()))?
        .decode()
        .with_context(|| {
            format!(
                "{} is not a picture this tool can decode (PNG, JPEG, BMP, GIF, TIFF, WebP), or \
                 it is damaged",
                path.display()
            )
        })
}

/// The picture's own channel count, alpha aside: 1 (grey) or 3 (colour).
pub fn picture_channels(img: &DynamicImage) -> usize {
    if img.color().has_color() { 3 } else { 1 }
}

/// Resizes (when the size differs) and converts a decoded picture into `h x w x c` pixels.
pub fn to_model_input(img: DynamicImage, h: usize, w: usize, c: usize) -> Result<Vec<u8>> {
    let (tw, th) = (u32::try_from(w)?, u32::try_from(h)?);
    let img = if (img.width(), img.height()) == (tw, th) {
        img
    } else {
        img.resize_exact(tw, th, FilterType::Triangle)
    };
    Ok(match c {
        1 => img.into_luma8().into_raw(),
        3 => img.into_rgb8().into_raw(),
        _ => bail!("models with {c} input channels take no pictures (1: grey, 3: RGB)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_and_colour_pictures_of_any_size() {
        let dir = tempfile::tempdir().unwrap();
        // A 2x1 RGB picture: red then white.
        let rgb = image::RgbImage::from_raw(2, 1, vec![255, 0, 0, 255, 255, 255]).unwrap();
        let png = dir.path().join("a.png");
        rgb.save(&png).unwrap();
        assert_eq!(
            load_picture(&png, 1, 2, 3).unwrap(),
            vec![255, 0, 0, 255, 255, 255]
        );
        let grey = load_picture(&png, 1, 2, 1).unwrap();
        assert_eq!(grey[1], 255);
        assert!(
            grey[0] > 40 && grey[0] < 70,
            "BT.709 luma of red: {}",
            grey[0]
        );
        // Resized: a uniform picture stays uniform.
        let big = image::GrayImage::from_pixel(40, 30, image::Luma([200]));
        let jpg = dir.path().join("b.jpg");
        big.save(&jpg).unwrap();
        let px = load_picture(&jpg, 28, 28, 1).unwrap();
        assert_eq!(px.len(), 28 * 28);
        assert!(px.iter().all(|&p| (198..=202).contains(&p)), "{px:?}");
    }

    #[test]
    fn a_damaged_or_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("broken.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not the rest of a png").unwrap();
        let err = format!("{:#}", load_picture(&bad, 28, 28, 1).unwrap_err());
        assert!(
            err.contains("broken.png") && err.contains("damaged"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            load_picture(&dir.path().join("nope.png"), 28, 28, 1).unwrap_err()
        );
        assert!(err.contains("nope.png"), "{err}");
    }
}
