//! Any byte string given to the GGUF reader parses or fails with a typed
//! error; nothing panics, and nothing allocates far beyond the input's size.
//! Files that parse are exercised further: metadata rendering, typed getters,
//! tensor views and dequantization of small tensors.

#![no_main]

use libfuzzer_sys::fuzz_target;
use metallic::gguf::GgufFile;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    for (key, value) in file.metadata() {
        let _ = value.summary(4);
        let _ = file.get_u32(key);
        let _ = file.get_string_array(key);
    }
    for info in file.tensors() {
        if let Ok(t) = file.tensor(&info.name) {
            if info.elem_count() <= 1 << 16 {
                let _ = t.to_vec_f32();
            }
        }
    }
});
