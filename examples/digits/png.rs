//! A grayscale PNG writer (stored deflate blocks: no compression crate for
//! a few kilobytes of pixels).

/// Writes `pixels` (`width × height`, row-major, 0 = black) as an 8-bit
/// grayscale PNG.
pub fn write_gray(
    path: &std::path::Path,
    width: usize,
    height: usize,
    pixels: &[u8],
) -> std::io::Result<()> {
    assert_eq!(pixels.len(), width * height, "pixel buffer size");
    // Each scanline starts with filter type 0 (none).
    let mut raw = Vec::with_capacity((width + 1) * height);
    for row in pixels.chunks(width) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8 bits, grayscale, deflate, no filter, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    std::fs::write(path, png)
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// A grid of 8×8 digit images (values in [−1, 1], ink high), `cols` per
/// row, each pixel drawn `scale × scale`, ink dark on white.
pub fn digit_grid(images: &[f32], cols: usize, scale: usize) -> (usize, usize, Vec<u8>) {
    let n = images.len() / 64;
    let rows = n.div_ceil(cols);
    let cell = 8 * scale + 2;
    let (w, h) = (cols * cell, rows * cell);
    let mut px = vec![255u8; w * h];
    for i in 0..n {
        let (r, c) = (i / cols, i % cols);
        for y in 0..8 * scale {
            for x in 0..8 * scale {
                let v = images[i * 64 + (y / scale) * 8 + x / scale];
                let ink = ((v + 1.0) * 0.5).clamp(0.0, 1.0);
                px[(r * cell + 1 + y) * w + c * cell + 1 + x] = (255.0 * (1.0 - ink)).round() as u8;
            }
        }
    }
    (w, h, px)
}
