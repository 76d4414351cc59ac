//! An input image (PNG or JPEG) decoded under the limits `dynofa` reads images with.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(data));
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16384);
    limits.max_image_height = Some(16384);
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    if let Ok(reader) = reader.with_guessed_format() {
        let _ = reader.decode();
    }
});
