//! Image files are decoded within bounds: a small file whose header claims huge dimensions
//! is refused from its header, by every command that reads images, naming the file and
//! what it claims.

mod common;

use std::path::Path;

use common::{SMALLEST_R128, dynofa, s, stderr};

/// CRC-32 (ISO-HDLC, as PNG chunks use).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A valid 8×8 PNG whose header (IHDR, with its CRC made right) claims `width × height`.
fn png_claiming(path: &Path, width: u32, height: u32) {
    let mut bytes = Vec::new();
    image::RgbImage::new(8, 8).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    // Signature (8), then IHDR: length (4), "IHDR", width (4), height (4), 5 more bytes, CRC.
    assert_eq!(&bytes[12..16], b"IHDR");
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn crc32_is_pngs() {
    assert_eq!(crc32(b"IEND"), 0xae42_6082, "the CRC every PNG ends with");
}

#[test]
fn an_image_claiming_huge_dimensions_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.png");
    png_claiming(&huge, 100_000, 100_000);
    assert!(std::fs::metadata(&huge).unwrap().len() < 1000, "a tiny file");
    let small = SMALLEST_R128;
    let run = dynofa(&["infer", "--subnet", small, "--image", s(&huge)]);
    let err = stderr(&run);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains(s(&huge)) && err.contains("100000×100000"), "names the file and what it claims: {err}");
    assert!(!err.contains("panicked") && !err.contains("memory allocation"), "{err}");

    // `run --input`: skipped with a warning that says the same; with nothing else, an error.
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    std::fs::rename(&huge, frames.join("huge.png")).unwrap();
    let run = dynofa(&["run", "--target-ms", "40", "--duration", "1", "--input", s(&frames), "--trace", s(&dir.path().join("t.csv"))]);
    let err = stderr(&run);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains(s(&frames)) && err.contains("100000×100000"), "{err}");

    // A file within the bounds but whose pixels would take too much memory.
    let wide = dir.path().join("wide.png");
    png_claiming(&wide, 16_000, 16_000);
    let run = dynofa(&["infer", "--subnet", small, "--image", s(&wide)]);
    let err = stderr(&run);
    assert!(!run.status.success() && err.contains(s(&wide)) && err.contains("MiB"), "{err}");
}
