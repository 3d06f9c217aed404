//! Files: the one atomic writer every crate's writers use ([`atomic`]), safetensors writing and
//! host reading ([`safetensors`]), JSON writing, and small byte helpers (text decoding,
//! checksums, host copies of tensors).

pub mod atomic;
pub mod safetensors;

pub use atomic::{write_dir_atomic, write_file_atomic};

use burn::tensor::{backend::Backend, Tensor};

/// Text as UTF-8, or as Latin-1 when it is not valid UTF-8 (every byte its own code point), so
/// reading a legacy corpus never fails.
pub fn decode_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json(path: &std::path::Path, value: &serde_json::Value) -> crate::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    atomic::write_bytes_atomic(path, text.as_bytes())
}

/// FNV-1a, 64 bits: a fast checksum for torn-write detection and seeding (not cryptographic).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A host copy `(shape, values)` of any float tensor, in f32.
pub fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data().convert::<f32>();
    let shape = data.shape.to_vec();
    (shape, data.into_vec::<f32>().expect("converted to f32"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_falls_back_to_latin1_and_fnv1a_matches_its_reference() {
        assert_eq!(decode_text("é".as_bytes().to_vec()), "é");
        assert_eq!(decode_text(vec![b'c', 0xe9]), "cé");
        // Reference values of 64-bit FNV-1a (Fowler, Noll, Vo test suite).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
