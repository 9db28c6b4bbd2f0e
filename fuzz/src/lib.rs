//! Helpers shared by the fuzz targets.

/// Splits `data` into chunks whose sizes come from `seed` (a small xorshift generator), so one
/// input is also fed to incremental decoders in an arbitrary split: a decoder must give the
/// same result whatever the split.
pub fn chunks(seed: u8, data: &[u8]) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 0x100;
    let max = usize::from(seed % 32) + 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max + 1).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}
